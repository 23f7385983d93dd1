"""Replay the real platform posts in ../shared/data/platform_events through the default engine and list what
was hidden, downranked or labelled, with the spam score distribution.

    PYTHONPATH=src python scripts/real_posts.py [DATA_DIR] [--rules DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bastion.events.atproto import map_path
from bastion.events.jetstream import JetstreamMapper

FILES = [
    ("bluesky_jetstream/expected_v1.jsonl", "jetstream"),
    ("bluesky_jetstream/golden_v1.jsonl", "jetstream"),
    ("indigo_automod_captures/capture_atprotocom.json", "atproto"),
    ("indigo_automod_captures/capture_hackerdarkweb.json", "atproto"),
    ("indigo_firehose_commits/firehose_commit_4621317030.json", "atproto"),
    ("indigo_firehose_commits/firehose_commit_4621317332.json", "atproto"),
    ("indigo_firehose_commits/firehose_commit_4621332152.json", "atproto"),
    ("indigo_firehose_commits/firehose_commit_4623075231.json", "atproto"),
    ("indigo_relay_scenarios/account_lifecycle.json", "atproto"),
    ("indigo_relay_scenarios/deactivation.json", "atproto"),
    ("indigo_relay_scenarios/post_lifecycle.json", "atproto"),
    ("ozone_devenv_fixtures/events.json", "atproto"),
    ("ozone_devenv_fixtures/statuses.json", "atproto"),
]
POST_ACTIONS = ("post.hide", "post.downrank")


def posts_of(path: Path, fmt: str) -> dict[str, str]:
    if fmt == "jetstream":
        m = JetstreamMapper()
        events = [e for line in path.read_text().splitlines() if line.strip() for e in m.map(json.loads(line))]
    else:
        events = map_path(path).events
    return {e["post"]["id"]: e["post"].get("text") or "" for e in events
            if e.get("type") == "post.create" and isinstance(e.get("post"), dict)}


def main() -> None:
    args = sys.argv[1:]
    rules = []
    if "--rules" in args:
        i = args.index("--rules")
        rules = ["--rules", args[i + 1]]
        del args[i:i + 2]
    data = Path(args[0] if args else "../shared/data/platform_events")
    total = {"posts": 0, "post.hide": 0, "post.downrank": 0, "label.add": 0}
    spam: list[float] = []
    for rel, fmt in FILES:
        path = data / rel
        if not path.exists():
            continue
        posts = posts_of(path, fmt)
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "bastion.cli", "replay", str(path), "--format", fmt,
                            "--out", out, "--no-progress", *rules], check=True, capture_output=True)
            acts = [json.loads(x) for x in (Path(out) / "actions.jsonl").read_text().splitlines() if x]
            for line in (Path(out) / "scores.jsonl").read_text().splitlines():
                r = json.loads(line)
                if r["subject"]["kind"] == "post" and "spam" in r["scores"] and r["subject"]["id"] in posts:
                    spam.append(r["scores"]["spam"])
        total["posts"] += len(posts)
        hit: dict[str, list[str]] = {}
        for a in acts:
            if a["action"] in POST_ACTIONS and a["subject"]["id"] in posts:
                hit.setdefault(a["subject"]["id"], []).append(f'{a["action"]} by {a["source"]}')
            if a["action"] == "label.add":
                total["label.add"] += 1
        for kind in POST_ACTIONS:
            total[kind] += sum(any(x.startswith(kind) for x in v) for v in hit.values())
        print(f"== {rel} ({fmt}): {len(posts)} posts, {len(hit)} enforced")
        for pid, what in hit.items():
            print(f"   {'; '.join(sorted(set(what)))}\n     {posts[pid][:160]!r}")
    n = max(total["posts"], 1)
    print(f"\nposts {total['posts']}: hidden {total['post.hide']} ({total['post.hide'] / n:.1%}), "
          f"downranked {total['post.downrank']} ({total['post.downrank'] / n:.1%}), labels {total['label.add']}")
    spam.sort()
    if spam:
        q = [spam[min(len(spam) - 1, int(p * len(spam)))] for p in (0.1, 0.25, 0.5, 0.75, 0.9)]
        print(f"spam score over {len(spam)} posts: p10/25/50/75/90 " + " ".join(f"{v:.3f}" for v in q)
              + f"; >=0.5: {sum(v >= 0.5 for v in spam)}, >=0.8: {sum(v >= 0.8 for v in spam)}, "
              f">=0.95: {sum(v >= 0.95 for v in spam)}")


if __name__ == "__main__":
    main()

"""Real Bluesky posts replayed through the default engine (issue 16): an ordinary link share, in any
language, is not hidden or downranked on the text spam score alone, while the real spam account of indigo's
automod captures still has its repeated spam hidden.

Before the fix, ``SpamScoreHigh`` hid 3 of the 17 Jetstream posts (a Czech news summary with its link, a
UFO-news feed post, a bare YouTube link) and 6 of the 20 posts of the official atproto.com account, and
``SpamScoreWithLink`` downranked 4 and 11 of them: the text model (trained on SMS and YouTube comments)
scores ordinary link shares 0.95+."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.settings import find_data_dir

PE = find_data_dir() / "platform_events"
BENIGN = [("bluesky_jetstream/expected_v1.jsonl", "jetstream"),
          ("bluesky_jetstream/golden_v1.jsonl", "jetstream"),
          ("indigo_automod_captures/capture_atprotocom.json", "atproto")]


def _replay(tmp_path: Path, rel: str, fmt: str) -> tuple[list[dict], dict[str, float]]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "replay", str(PE / rel), "--format", fmt, "--out", str(out),
         "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    actions = [json.loads(x) for x in (out / "actions.jsonl").read_text().splitlines() if x]
    spam = {}
    for line in (out / "scores.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["subject"]["kind"] == "post" and "spam" in r["scores"]:
            spam[r["subject"]["id"]] = r["scores"]["spam"]
    return actions, spam


@pytest.mark.parametrize(("rel", "fmt"), BENIGN)
def test_real_posts_are_not_hidden(tmp_path: Path, rel: str, fmt: str) -> None:
    actions, spam = _replay(tmp_path, rel, fmt)
    enforced = [(a["action"], a["source"], spam.get(a["subject"]["id"])) for a in actions
                if a["action"] in ("post.hide", "post.downrank")]
    assert enforced == [], enforced
    assert not [a for a in actions if a["action"] == "label.add" and a.get("label") == "spam"]
    if rel.endswith("expected_v1.jsonl"):
        # the model still scores these link shares as spam: the rules, not the scores, changed
        assert sum(v >= 0.95 for v in spam.values()) >= 3


def test_real_spam_account_is_still_hidden(tmp_path: Path) -> None:
    actions, _ = _replay(tmp_path, "indigo_automod_captures/capture_hackerdarkweb.json", "atproto")
    hidden = [a for a in actions if a["action"] == "post.hide"]
    assert hidden and all(a["source"] == "rule:SpamScoreHigh" for a in hidden)
    assert any(a["action"] == "label.add" and a.get("label") == "spam" for a in actions)

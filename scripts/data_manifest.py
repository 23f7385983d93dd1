#!/usr/bin/env python3
"""Maintainer script: (re)write src/bastion/datasets/manifest.json - every file of the public data sets with its
size and sha256, computed from a data folder (default ../shared/data), and, where the file is published
unchanged (or with a recorded transform), the URL it is published at. `bastion data fetch` reads the manifest.

    python scripts/data_manifest.py [DATA_DIR]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

GH = "https://raw.githubusercontent.com"
# data set -> (upstream base URL, {local path: upstream path relative to the base}); files absent from the map
# were written or derived here (READMEs, joined tables) and come only from a mirror.
UPSTREAM: dict[str, tuple[str, dict[str, str]]] = {
    "tweeteval_offensive": (f"{GH}/cardiffnlp/tweeteval/4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66/datasets/offensive",
                            {f: f for f in ("mapping.txt", "train_text.txt", "train_labels.txt", "val_text.txt",
                                            "val_labels.txt", "test_text.txt", "test_labels.txt")}),
    "tweeteval_hate": (f"{GH}/cardiffnlp/tweeteval/4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66/datasets/hate",
                       {f: f for f in ("mapping.txt", "train_text.txt", "train_labels.txt", "val_text.txt",
                                       "val_labels.txt", "test_text.txt", "test_labels.txt")}),
    "sms_spam_collection": (GH, {
        # the published copy has a header line `Label<TAB>SMS`, dropped here (transform below)
        "SMSSpamCollection": "hamzaaacodes/sms-spam-collection/f3e73e1e74e6330b62d1ee1983bba2a063184c26/"
                             "SMSSpamCollection",
        "ORIGINAL_readme.txt": "shrey-c/SpamHam/ed8a5b4675a168c7dac8d40e84181311237c2cb3/smsspamcollection/readme",
    }),
    "youtube_spam_collection": (
        f"{GH}/arshikachauhan/youtube-spam-comment-detector/a53277236d9dfca4f12c82f424aa757edc99b94f/data",
        {f: f for f in ("Youtube01-Psy.csv", "Youtube02-KatyPerry.csv", "Youtube03-LMFAO.csv",
                        "Youtube04-Eminem.csv", "Youtube05-Shakira.csv")}),
    "olid_offenseval2019": (f"{GH}/victoriyayeotobo/NLP-CW1/f92c5a699ce967693244082698f1ba6b5e7d01cd",
                            {"olid-training-v1.0.tsv": "olid-training-v1.0.tsv"}),
    "kaggle_twitter_bots": (f"{GH}/jubins/ML-TwitterBotDetection/4517f9c79cb35aee85c52549afdf00c744fbd977/Project/data",
                            {"bots_data.csv": "bots_data.csv", "nonbots_data.csv": "nonbots_data.csv"}),
    "cresci_rtbust_2019": (f"{GH}/shradha-khapra/TwitterBotDetection/35b6be15d7b255c7fd65d43d8492272383d024cf/"
                           "cresci-rtbust-2019",
                           {"cresci-rtbust-2019.tsv": "cresci-rtbust-2019.tsv",
                            "cresci-rtbust-2019_tweets.json": "cresci-rtbust-2019_tweets.json"}),
    "gilani2017_bot_features": (f"{GH}/Flajt/Twitter_bot_detection/4b989c7a49889d33faddfc236dce67806b355679/"
                                "Datasets/classification_processed", {}),   # filled below: bots/*, humans/*
    "ban_evasion_wikipedia_sample": (f"{GH}/claws-lab/ban_evasion/0283316ec699141b849d1e425b4320bc56c5214c", {}),
}
TRANSFORMS = {("sms_spam_collection", "SMSSpamCollection"): "drop_first_line"}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    data = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared" / "data")
    out: dict[str, dict] = {}
    for ds in sorted(p for p in data.iterdir() if p.is_dir()):
        base, mapping = UPSTREAM.get(ds.name, (None, {}))
        files = {}
        for f in sorted(p for p in ds.rglob("*") if p.is_file()):
            rel = f.relative_to(ds).as_posix()
            up = mapping.get(rel)
            if ds.name == "gilani2017_bot_features" and rel.startswith(("bots/", "humans/")):
                up = rel
            if ds.name == "ban_evasion_wikipedia_sample":
                up = rel if rel.startswith("final_data/") else ("README.md" if rel == "ORIGINAL_README.md" else None)
            entry = {"size": f.stat().st_size, "sha256": sha256(f)}
            if up is not None and base is not None:
                entry["url"] = f"{base}/{up}"
                if (ds.name, rel) in TRANSFORMS:
                    entry["transform"] = TRANSFORMS[(ds.name, rel)]
            files[rel] = entry
        out[ds.name] = {"files": files}
    target = Path(__file__).resolve().parents[1] / "src" / "bastion" / "datasets" / "manifest.json"
    target.write_text(json.dumps({"version": 1, "datasets": out}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {len(out)} data sets, {sum(len(d['files']) for d in out.values())} files")


if __name__ == "__main__":
    main()

"""`bastion data fetch` against ../shared/data used as a mirror (file:// and a local HTTP server), the published-
source mode against a local copy of GitHub's raw layout, checksums refusing a corrupted file, and the one-line
error of a command whose data set is missing."""

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.datasets.fetch import GITHUB_RAW, fetch, load_manifest
from bastion.settings import find_data_dir

SMALL = ["sms_spam_collection", "tweeteval_hate"]


def data_dir() -> Path:
    d = find_data_dir()
    assert (d / "tweeteval_hate").is_dir(), f"the shared data sets are missing at {d}"
    return d


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def http_root(tmp_path):
    """A static HTTP server over a folder (served on 127.0.0.1, any free port)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_the_manifest_matches_the_shared_data():
    data = data_dir()
    manifest = load_manifest()
    on_disk = {p.relative_to(data).as_posix() for ds in manifest for p in (data / ds).rglob("*") if p.is_file()}
    listed = {f"{ds}/{rel}" for ds, d in manifest.items() for rel in d["files"]}
    assert on_disk == listed
    for ds, d in manifest.items():
        for rel, e in d["files"].items():
            assert (data / ds / rel).stat().st_size == e["size"] and _sha(data / ds / rel) == e["sha256"], rel
    # every data set the simulator and the trainers read has a published source for its data files
    for ds in ("tweeteval_offensive", "tweeteval_hate", "sms_spam_collection", "youtube_spam_collection",
               "olid_offenseval2019", "kaggle_twitter_bots"):
        data_files = [r for r in manifest[ds]["files"] if not r.upper().startswith(("README", "ORIGINAL_"))]
        assert all(manifest[ds]["files"][r].get("url", "").startswith(GITHUB_RAW) for r in data_files), ds


def test_fetch_everything_from_a_file_mirror_then_nothing_twice(tmp_path):
    dest = tmp_path / "data"
    r = CliRunner().invoke(app, ["data", "fetch", "--dir", str(dest), "--mirror", data_dir().as_uri(),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    manifest = load_manifest()
    n = sum(len(d["files"]) for d in manifest.values())
    assert f"{n} file(s) downloaded" in r.output and "0 failed" in r.output
    for ds, d in manifest.items():
        for rel in d["files"]:
            assert (dest / ds / rel).read_bytes() == (data_dir() / ds / rel).read_bytes()
    again = CliRunner().invoke(app, ["data", "fetch", "--dir", str(dest), "--mirror", str(data_dir()),
                                     "--no-progress"])
    assert again.exit_code == 0 and f"0 file(s) downloaded (0.0 MB), {n} already present" in again.output
    listing = CliRunner().invoke(app, ["data", "list", "--dir", str(dest)])
    assert listing.exit_code == 0 and "MISSING" not in listing.output and "tweeteval_hate" in listing.output


def test_an_http_mirror_with_a_corrupted_file_fails_that_file_only(tmp_path, http_root):
    served, url = http_root
    for ds in SMALL:
        shutil.copytree(data_dir() / ds, served / ds)
    bad = served / "tweeteval_hate" / "val_labels.txt"
    bad.write_bytes(bad.read_bytes().replace(b"1", b"0", 1))
    dest = tmp_path / "data"
    seen = []
    report = fetch(dest, mirror=url, only=SMALL, progress=lambda name, done, total: seen.append((done, total)))
    assert [f for f, _ in report.failed] == ["tweeteval_hate/val_labels.txt"]
    assert "checksum mismatch" in report.failed[0][1]
    assert not (dest / "tweeteval_hate" / "val_labels.txt").exists()          # never a wrong file in place
    assert not list(dest.rglob(".fetch-*"))                                     # no temporary file left
    assert len(report.downloaded) == sum(len(load_manifest()[d]["files"]) for d in SMALL) - 1
    assert seen and seen[-1][0] == seen[-1][1] and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))
    env = {**os.environ, "BASTION_DATA_MIRROR": url}
    proc = subprocess.run([sys.executable, "-m", "bastion.cli", "data", "fetch", "--dir", str(dest), "--only",
                           "tweeteval_hate", "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "failed: tweeteval_hate/val_labels.txt" in proc.stderr


def test_published_sources_through_a_replaced_host(tmp_path, http_root):
    """The default source: each file at its published URL (GitHub raw at a fixed commit) - here a local copy of
    that layout, with the SMS file as published (with the header line the copy here dropped)."""
    served, url = http_root
    manifest = load_manifest()
    for ds in SMALL:
        for rel, e in manifest[ds]["files"].items():
            if "url" not in e:
                continue
            path = served / urllib.parse.unquote(e["url"][len(GITHUB_RAW) + 1:])
            path.parent.mkdir(parents=True, exist_ok=True)
            body = (data_dir() / ds / rel).read_bytes()
            path.write_bytes(b"Label\tSMS\n" + body if e.get("transform") == "drop_first_line" else body)
    dest = tmp_path / "data"
    r = CliRunner().invoke(app, ["data", "fetch", "--dir", str(dest), "--upstream", url, "--no-progress",
                                 *[a for ds in SMALL for a in ("--only", ds)]])
    assert r.exit_code == 0, r.output
    assert "0 failed" in r.output and "without a published source" in r.output
    assert (dest / "sms_spam_collection" / "SMSSpamCollection").read_bytes() == \
        (data_dir() / "sms_spam_collection" / "SMSSpamCollection").read_bytes()
    assert not (dest / "tweeteval_hate" / "README.md").exists()        # written here: only from a mirror
    assert (dest / "tweeteval_hate" / "test_text.txt").is_file()


@pytest.mark.parametrize("argv", [["sim", "--users", "50", "--days", "0.05"],
                                  ["demo", "--users", "50", "--days", "0.05", "--no-serve"]])
def test_missing_data_is_one_line_naming_it_and_where(tmp_path, argv):
    empty = tmp_path / "nodata"
    empty.mkdir()
    env = {**os.environ, "BASTION_DATA_DIR": str(empty)}
    proc = subprocess.run([sys.executable, "-m", "bastion.cli", *argv, "--out", str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "tweeteval_offensive" in errors[0] and str(empty) in errors[0] and "BASTION_DATA_DIR" in errors[0]
    assert "bastion data fetch" in errors[0]

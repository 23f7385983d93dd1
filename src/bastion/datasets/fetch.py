"""`bastion data fetch`: download the public data sets into the data folder, every file checked against the
size and sha256 in ``manifest.json`` (written by ``scripts/data_manifest.py``).

Two sources:

* the published sources (default): each file from the URL it is published at (a GitHub repository at a fixed
  commit, see each data set's README), with the recorded transform where the copy here differs (the SMS
  corpus's header line). The host can be replaced (``upstream``) to go through a proxy or a copy of GitHub's raw
  file layout. Files written or derived here (READMEs, joined tables, the platform captures) have no published
  URL and are skipped with a note;
* a mirror (``mirror``: an ``http(s)://`` or ``file://`` URL or a folder) laid out like the data folder itself,
  ``MIRROR/<data set>/<file>`` - every file.

A file already present with the right checksum is not downloaded again; a download lands in a temporary file
and replaces the target only once its checksum matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).parent / "manifest.json"
GITHUB_RAW = "https://raw.githubusercontent.com"


class FetchError(RuntimeError):
    pass


@dataclass
class FetchReport:
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # no published source (needs a mirror)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(path.read_text())["datasets"]
    return manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirror_url(mirror: str) -> str:
    """An ``http(s)://`` or ``file://`` URL as given; a folder as its ``file://`` URL."""
    if "://" in mirror:
        return mirror.rstrip("/")
    return Path(mirror).expanduser().resolve().as_uri()


def source_url(dataset: str, rel: str, entry: dict[str, Any], mirror: str | None, upstream: str) -> str | None:
    """Where one file comes from: the mirror, else its published URL (host replaced by ``upstream``), else None."""
    if mirror:
        return f"{mirror_url(mirror)}/{urllib.parse.quote(dataset)}/{urllib.parse.quote(rel)}"
    url = entry.get("url")
    if not url:
        return None
    if upstream.rstrip("/") != GITHUB_RAW and url.startswith(GITHUB_RAW):
        url = upstream.rstrip("/") + url[len(GITHUB_RAW):]
    return str(url)


def _download(url: str, into: Path, on_bytes: Callable[[int], None], timeout: float) -> None:
    if not url.startswith(("http://", "https://", "file://")):
        raise FetchError(f"{url}: only http(s):// and file:// sources are supported")
    req = urllib.request.Request(url, headers={"User-Agent": "bastion-data-fetch"})  # noqa: S310 (scheme checked)
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(into, "wb") as out:  # noqa: S310
        for chunk in iter(lambda: resp.read(1 << 16), b""):
            out.write(chunk)
            on_bytes(len(chunk))


def _transform(path: Path, kind: str) -> None:
    if kind == "drop_first_line":
        data = path.read_bytes()
        path.write_bytes(data[data.index(b"\n") + 1:] if b"\n" in data else b"")
    else:
        raise FetchError(f"unknown transform {kind!r} in the manifest")


def fetch(dest: Path, mirror: str | None = None, upstream: str = GITHUB_RAW, only: Iterable[str] = (),
          manifest: dict[str, Any] | None = None, progress: Callable[[str, int, int], None] | None = None,
          timeout: float = 60.0) -> FetchReport:
    """Fetch the data sets (all, or those named in ``only``) into ``dest``. ``progress(file, done_bytes,
    total_bytes)`` is called as bytes arrive."""
    manifest = manifest or load_manifest()
    names = list(only) or sorted(manifest)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        raise FetchError(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(sorted(manifest))}")
    report = FetchReport()
    plan = []
    for ds in names:
        for rel, entry in sorted(manifest[ds]["files"].items()):
            target = dest / ds / rel
            if target.is_file() and target.stat().st_size == entry["size"] and _sha256(target) == entry["sha256"]:
                report.present.append(f"{ds}/{rel}")
                continue
            url = source_url(ds, rel, entry, mirror, upstream)
            if url is None:
                report.skipped.append(f"{ds}/{rel}")
                continue
            plan.append((ds, rel, entry, url, target))
    total = sum(e["size"] for _, _, e, _, _ in plan)
    done = 0
    for ds, rel, entry, url, target in plan:
        name = f"{ds}/{rel}"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        start = done

        def on_bytes(n: int, _name: str = name) -> None:
            nonlocal done
            done += n
            if progress:
                progress(_name, done, total)

        try:
            _download(url, tmp, on_bytes, timeout)
            if entry.get("transform") and not mirror:
                _transform(tmp, entry["transform"])
            got = _sha256(tmp)
            if got != entry["sha256"]:
                raise FetchError(f"checksum mismatch: sha256 {got}, the manifest says {entry['sha256']}")
            os.replace(tmp, target)
            report.downloaded.append(name)
            report.bytes += target.stat().st_size
        except (OSError, ValueError, FetchError) as exc:
            report.failed.append((name, f"{url}: {exc}"))
            done = start + entry["size"]
        finally:
            tmp.unlink(missing_ok=True)
    return report

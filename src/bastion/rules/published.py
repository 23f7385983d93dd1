"""Rules everywhere: a rule pack published once to the deployment's Redis, followed by every stream worker.

``publish(client, prefix, directory, registry, by)`` validates the pack (every file compiled against
``registry``; a pack with any error is refused and nothing is published), then stores its files under their
content hash and makes that hash the current version, in one transaction:

* ``PREFIXrules:pack:HASH`` - a hash of relative path -> file content (rule files and ``lists/*.txt``);
* ``PREFIXrules:current`` - the current version's hash;
* ``PREFIXrules:log`` - a stream of publications (hash, who, when, files added/changed/removed).

A :class:`RulesFollower` in each worker polls ``rules:current`` (at most every ``every_s``, between batches);
on a new version it writes the pack to a private directory and has the rules detector load it - compiled
and validated again against the worker's own registry - and swaps it in (one reference assignment: an event
runs on one rule set, and the swap lands between batches). A pack the worker cannot load is refused and the
running set stays; each worker's applied (or refused) version is in ``PREFIXrules:applied``.

The rules package does no I/O through sources or sinks: ``client`` is any redis-py client the caller made.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.rules.loader import load_rules, rule_files

log = logging.getLogger("bastion.rules")


def pack_files(directory: Path) -> dict[str, bytes]:
    """The files that make a pack: rule files (not ``tests/``) and ``lists/*.txt``, by relative path."""
    directory = Path(directory)
    paths = rule_files(directory) + sorted((directory / "lists").glob("*.txt"))
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in paths}


def pack_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def current_version(client: Any, prefix: str) -> str | None:
    raw = client.get(f"{prefix}rules:current")
    return raw.decode() if raw else None


def read_pack(client: Any, prefix: str, version: str) -> dict[str, bytes]:
    return {k.decode(): v for k, v in client.hgetall(f"{prefix}rules:pack:{version}").items()}


def publish(client: Any, prefix: str, directory: Path, registry: Any, by: str) -> dict[str, Any]:
    """Validate ``directory`` and make it the deployment's rule version. Raises ``RuleSetError`` (every
    problem with file, line and column) for a bad pack, which is not published. Returns what changed."""
    directory = Path(directory)
    rs = load_rules(directory, registry)   # validated once, here; RuleSetError leaves the published set alone
    files = pack_files(directory)
    version = pack_hash(files)
    prev = current_version(client, prefix)
    old = read_pack(client, prefix, prev) if prev else {}
    changed = {
        "added": sorted(set(files) - set(old)),
        "removed": sorted(set(old) - set(files)),
        "modified": sorted(n for n in set(files) & set(old) if files[n] != old[n]),
    }
    pipe = client.pipeline(transaction=True)
    key = f"{prefix}rules:pack:{version}"
    pipe.delete(key)
    pipe.hset(key, mapping=files)
    pipe.set(f"{prefix}rules:current", version)
    pipe.xadd(f"{prefix}rules:log", {"version": version, "previous": prev or "", "by": by, "ts": repr(time.time()),
                                     "rules": len(rs.rules), "changed": repr(changed)})
    pipe.execute()
    return {"version": version, "previous": prev, "rules": len(rs.rules), **changed}


class RulesFollower:
    """Keeps one rules detector on the deployment's published version (see the module docstring)."""

    def __init__(self, client: Any, prefix: str, detector: Any, name: str, every_s: float = 1.0,
                 on_change: Callable[[str, bool, str], None] | None = None) -> None:
        self.r, self.prefix, self.detector, self.name = client, prefix, detector, name
        self.every_s = every_s
        self.on_change = on_change
        self.version: str | None = None        # the published version this follower last applied or refused
        self._checked = -1e9
        self._dir: Path | None = None

    def poll(self, force: bool = False) -> tuple[bool, str] | None:
        """Apply the published version if it is new; ``(ok, version or errors)``, or None when nothing changed
        (or it is not time to look yet)."""
        now = time.monotonic()
        if not force and now - self._checked < self.every_s:
            return None
        self._checked = now
        version = current_version(self.r, self.prefix)
        if version is None or version == self.version:
            return None
        self.version = version
        files = read_pack(self.r, self.prefix, version)
        target = Path(tempfile.mkdtemp(prefix=f"bastion-rules-{self.name}-{version}-"))
        for rel, content in files.items():
            p = (target / rel).resolve()
            if target.resolve() not in p.parents:   # a path outside the pack's folder is not a rule file
                shutil.rmtree(target, ignore_errors=True)
                return self._done(version, False, f"refused: file {rel!r} outside the pack", None)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
        ok, message = self.detector.reload(target) if files else (False, "empty pack")
        return self._done(version, ok, message, target)

    def _done(self, version: str, ok: bool, message: str, target: Path | None) -> tuple[bool, str]:
        if ok:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = target
            log.info("rules version %s in service (%s)", version, self.name)
        else:
            if target is not None:
                shutil.rmtree(target, ignore_errors=True)
            log.error("rules version %s refused by %s, the running set stays: %s", version, self.name, message)
        self.r.hset(f"{self.prefix}rules:applied", self.name, version if ok else f"refused:{version}")
        if self.on_change is not None:
            self.on_change(version, ok, message)
        return ok, version if ok else message

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

"""Other real atproto formats -> canonical events (../shared/spec/platform-formats.md, events-v1.md).

Pure adapters: they map what the caller passes (decoded JSON, bytes) and never raise on bad input. Every
source record is either mapped to canonical event dicts or counted by reason in ``ignored``:

- indigo automod captures (``AccountCapture``: ``accountMeta`` + ``postRecords``): one ``account.create``
  (handle, display name, bio) and one ``post.create`` per post record, oldest first;
- raw firehose ``#commit`` bodies (``ops`` + ``blocks``, a CAR v1 file as ``{"$bytes": base64}``): the CAR and
  its DAG-CBOR blocks are decoded by :mod:`bastion.events.car` (:func:`read_car`, :func:`decode_dag_cbor`), each op is turned into the
  Jetstream v1 shape and mapped by :class:`~bastion.events.jetstream.JetstreamMapper`, so the rules and the
  event ids (``did/collection/rkey/rev``) are exactly Jetstream's;
- relay test scenarios (``messages[].frame {header: {op, t}, body}``): ``#commit`` as above, ``#account`` and
  ``#identity`` as Jetstream ``account``/``identity`` messages, ``#sync``/``#info`` and ``drop: true`` frames
  ignored with a reason;
- Ozone ``modEventView`` lists: ``modEventReport`` -> ``report.create``, ``modEventTakedown`` /
  ``modEventReverseTakedown`` on an account -> ``account.status`` by the platform, ``accountEvent`` like a
  firehose ``#account``; subject status views are not events.

:func:`map_file` detects a file's shape and maps it.

CAR and DAG-CBOR decoding live in :mod:`bastion.events.car` (its doctests cover them).

>>> reason_of("tools.ozone.report.defs#reasonMisleadingBot"), reason_of("com.atproto.moderation.defs#reasonRude")
('bot', 'abuse')
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bastion.events.car import CarFile, CborError, cid_string, decode_dag_cbor, read_car
from bastion.events.jetstream import (
    POST,
    PROFILE,
    SUSPENDED_STATUSES,
    USER_STATUSES,
    JetstreamMapper,
    post_fields,
)

# DAG-CBOR and CAR v1 live in bastion.events.car (re-exported here: CarFile, CborError, cid_string,
# decode_dag_cbor, read_car)

# --------------------------------------------------------------------------------------------------------------
# helpers

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_us(value: Any) -> int | None:
    """Epoch microseconds of an RFC 3339 time with an offset, else None."""
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _iso_ms(value: Any) -> int | None:
    us = _iso_us(value)
    return None if us is None else us // 1000


def _split_uri(uri: Any) -> tuple[str, str, str] | None:
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[5:].split("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


_TOKEN = re.compile(r"[A-Z][a-z]*|[a-z]+")

_LEGACY_REASONS = {
    "reasonSpam": "spam", "reasonRude": "abuse", "reasonMisleading": "misinformation", "reasonSexual": "other",
    "reasonViolation": "other", "reasonOther": "other", "reasonAppeal": "other",
}
# tools.ozone.report.defs reasons, by the words of their name, most specific first
_REASON_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Hate", "Speech"), "hate"),
    (("Bot",), "bot"),
    (("Impersonation",), "impersonation"),
    (("Spam",), "spam"),
    (("Scam",), "spam"),
    (("Harassment",), "harassment"),
    (("Threats",), "abuse"),
    (("Misleading",), "misinformation"),
    (("Rude",), "abuse"),
)


def reason_of(reason_type: Any) -> str:
    """Canonical report reason of an atproto ``reasonType`` (legacy ``com.atproto`` or ``tools.ozone``)."""
    if not isinstance(reason_type, str):
        return "other"
    name = reason_type.rsplit("#", 1)[-1]
    if name in _LEGACY_REASONS:
        return _LEGACY_REASONS[name]
    words = _TOKEN.findall(name.removeprefix("reason"))
    for needed, reason in _REASON_WORDS:
        if all(w in words for w in needed):
            return reason
    return "other"


def _short_type(value: Any) -> str:
    return str(value).rsplit("#", 1)[-1] if value else "untyped"


# --------------------------------------------------------------------------------------------------------------
# the mapper


@dataclass
class MappedFile:
    """What one file maps to: events, ignored records by reason, and the record accounting
    (``records == mapped + sum(ignored.values())``)."""

    shape: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    records: int = 0
    mapped: int = 0


class AtprotoMapper:
    """Maps atproto records to canonical event dicts; stateful like :class:`JetstreamMapper` (which it uses
    for every repo commit, account and identity message, so deletes resolve across formats).

    ``records`` counts source records, ``mapped`` those that produced an event, and ``ignored`` (own reasons
    plus the Jetstream mapper's) the rest."""

    def __init__(self, platform: str = "bluesky", jetstream: JetstreamMapper | None = None,
                 moderation_platform: str = "ozone") -> None:
        self.js = jetstream or JetstreamMapper(platform=platform)
        self.platform = platform
        self.moderation_platform = moderation_platform
        self.own_ignored: Counter[str] = Counter()
        self.records = 0
        self.mapped = 0
        self._ozone_ids: set[str] = set()

    @property
    def ignored(self) -> Counter[str]:
        return self.own_ignored + self.js.ignored

    def ignore(self, reason: str, n: int = 1) -> list[dict[str, Any]]:
        self.records += n
        self.own_ignored[reason] += n
        return []

    def _emit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.records += 1
        self.mapped += 1
        return events

    # -- Jetstream-shaped messages ------------------------------------------------------------------------------

    def jetstream(self, msg: Any) -> list[dict[str, Any]]:
        """One Jetstream v1 message (a record), through the Jetstream mapper."""
        did = msg.get("did") if isinstance(msg, dict) else None
        first = isinstance(did, str) and did not in self.js.seen_dids
        before = sum(self.js.ignored.values())
        events = self.js.map(msg)
        self.records += 1
        primary = events[1:] if first and events else events
        if primary:
            self.mapped += 1
        elif sum(self.js.ignored.values()) == before:
            self.own_ignored["no event"] += 1
        return events

    # -- firehose ---------------------------------------------------------------------------------------------

    @staticmethod
    def commit_records(body: dict[str, Any]) -> int:
        """How many records a ``#commit`` body holds (one per op; a commit without ops is one record)."""
        ops = body.get("ops")
        return len(ops) if isinstance(ops, list) and ops else 1

    def firehose_commit(self, body: Any) -> list[dict[str, Any]]:
        """A ``com.atproto.sync.subscribeRepos#commit`` body in JSON form; one record per op."""
        if not isinstance(body, dict):
            return self.ignore("#commit body is not an object")
        ops = body.get("ops")
        n = self.commit_records(body)
        repo, rev, time_us = body.get("repo"), body.get("rev"), _iso_us(body.get("time"))
        if not isinstance(ops, list) or not ops:
            return self.ignore("#commit without ops")
        if not isinstance(repo, str) or not repo:
            return self.ignore("#commit without repo", n)
        if time_us is None:
            return self.ignore("#commit without a valid time", n)
        blocks: dict[str, bytes] = {}
        raw_blocks = body.get("blocks")
        car_error = None
        if isinstance(raw_blocks, dict) and isinstance(raw_blocks.get("$bytes"), str):
            try:
                blocks = read_car(_b64(raw_blocks["$bytes"])).blocks
            except (CborError, ValueError) as exc:
                car_error = str(exc)
        elif isinstance(raw_blocks, bytes | bytearray):
            try:
                blocks = read_car(bytes(raw_blocks)).blocks
            except CborError as exc:
                car_error = str(exc)
        out: list[dict[str, Any]] = []
        for op in ops:
            out.extend(self._op(repo, rev, time_us, op, blocks, car_error))
        return out

    def _op(self, repo: str, rev: Any, time_us: int, op: Any, blocks: dict[str, bytes],
            car_error: str | None) -> list[dict[str, Any]]:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str) or "/" not in op["path"]:
            return self.ignore("#commit op without a collection/rkey path")
        action = op.get("action")
        coll, rkey = op["path"].split("/", 1)
        commit: dict[str, Any] = {"rev": rev, "operation": action, "collection": coll, "rkey": rkey}
        if action in ("create", "update"):
            link = op.get("cid")
            cid = link.get("$link") if isinstance(link, dict) else None
            if not isinstance(cid, str):
                return self.ignore(f"#commit {action} op without a cid")
            block = blocks.get(cid)
            if block is None:
                return self.ignore(f"#commit record not in blocks ({car_error})" if car_error
                                   else "#commit record not in blocks")
            try:
                record = decode_dag_cbor(block)
            except CborError:
                return self.ignore("#commit record block is not DAG-CBOR")
            if not isinstance(record, dict):
                return self.ignore("#commit record is not a map")
            commit["record"] = record
            commit["cid"] = cid
        return self.jetstream({"did": repo, "time_us": time_us, "kind": "commit", "commit": commit})

    def relay_frame(self, message: Any) -> list[dict[str, Any]]:
        """One relay scenario message ``{frame: {header: {op, t}, body}, drop, invalid}``."""
        if not isinstance(message, dict):
            return self.ignore("relay message is not an object")
        frame = message.get("frame", message)
        if not isinstance(frame, dict) or not isinstance(frame.get("header"), dict):
            return self.ignore("relay message without a frame header")
        header, body = frame["header"], frame.get("body")
        t = header.get("t")
        n = self.commit_records(body) if t == "#commit" and isinstance(body, dict) else 1
        if message.get("drop") is True:
            return self.ignore("relay frame dropped (drop: true)", n)
        if message.get("invalid") is True:
            return self.ignore("relay frame invalid (rejected)", n)
        if header.get("op") != 1:
            return self.ignore("relay error frame")
        if not isinstance(body, dict):
            return self.ignore(f"relay {t} frame without a body")
        if t == "#commit":
            return self.firehose_commit(body)
        if t in ("#account", "#identity"):
            did, time_us = body.get("did"), _iso_us(body.get("time"))
            if not isinstance(did, str) or time_us is None:
                return self.ignore(f"relay {t} without did or time")
            kind = t[1:]
            return self.jetstream({"did": did, "time_us": time_us, "kind": kind, kind: body})
        if t == "#sync":
            return self.ignore("relay #sync (repo state reset, no record)")
        if t == "#info":
            return self.ignore("relay #info (stream control)")
        return self.ignore(f"relay frame {t}")

    # -- automod captures -------------------------------------------------------------------------------------

    def capture(self, obj: Any) -> list[dict[str, Any]]:
        """An indigo automod ``AccountCapture``: records are the account and each post record."""
        if not isinstance(obj, dict) or not isinstance(obj.get("accountMeta"), dict):
            return self.ignore("capture without accountMeta")
        meta = obj["accountMeta"]
        ident = meta.get("Identity") if isinstance(meta.get("Identity"), dict) else {}
        prof = meta.get("Profile") if isinstance(meta.get("Profile"), dict) else {}
        did = ident.get("DID")
        posts: list[Any] = obj["postRecords"] if isinstance(obj.get("postRecords"), list) else []
        if not isinstance(did, str) or not did:
            return self.ignore("capture without an account DID", 1 + len(posts))
        captured_ms = _iso_ms(obj.get("capturedAt"))
        post_events: list[dict[str, Any]] = []
        for rec in posts:
            ev = self._capture_post(did, rec, captured_ms)
            if ev is not None:
                post_events.append(self._emit([ev])[0])
        post_events.sort(key=lambda e: (e["ts"], e["id"]))
        first_ms = min([e["ts"] for e in post_events] + ([captured_ms] if captured_ms is not None else []),
                       default=None)
        if first_ms is None:
            self.ignore("capture without any valid time")
            return post_events
        profile: dict[str, Any] = {}
        if isinstance(ident.get("Handle"), str):
            profile["handle"] = ident["Handle"]
        if isinstance(prof.get("DisplayName"), str):
            profile["display_name"] = prof["DisplayName"]
        if isinstance(prof.get("Description"), str):
            profile["bio"] = prof["Description"]
        self.js.seen_dids.add(did)
        account: list[dict[str, Any]] = [{
            "id": f"{did}/capture/{obj.get('capturedAt')}"[:128], "type": "account.create", "ts": first_ms,
            "actor": did, "platform": self.platform, "profile": profile, "raw": meta}]
        if meta.get("Takendown") is True:
            account.append({"id": f"{did}/capture/{obj.get('capturedAt')}/takendown"[:128],
                            "type": "account.status", "ts": captured_ms or first_ms, "actor": did,
                            "platform": self.platform, "status": "suspended", "by": "platform",
                            "reason": "takendown", "raw": meta})
        return self._emit(account[:1]) + post_events + account[1:]

    def _capture_post(self, did: str, rec: Any, captured_ms: int | None) -> dict[str, Any] | None:
        if not isinstance(rec, dict) or not isinstance(rec.get("value"), dict):
            self.ignore("capture post record without value")
            return None
        parts = _split_uri(rec.get("uri"))
        value = rec["value"]
        if parts is None:
            self.ignore("capture record without an at:// uri")
            return None
        author, coll, rkey = parts
        if coll != POST or value.get("$type", POST) != POST:
            self.ignore(f"capture record in collection {coll}")
            return None
        ts = _iso_ms(value.get("createdAt"))
        if ts is None:
            ts = captured_ms
        if ts is None:
            self.ignore("capture post without a valid createdAt")
            return None
        return {"id": f"{author}/{coll}/{rkey}/capture"[:128], "type": "post.create", "ts": ts,
                "actor": author or did, "platform": self.platform,
                "post": {"id": rec["uri"], **post_fields(value)}, "raw": rec}

    # -- Ozone ------------------------------------------------------------------------------------------------

    def ozone_event(self, view: Any, group: str = "") -> list[dict[str, Any]]:
        """One Ozone ``modEventView``."""
        if not isinstance(view, dict) or not isinstance(view.get("event"), dict):
            return self.ignore("ozone event view without event")
        etype = _short_type(view["event"].get("$type"))
        ts = _iso_ms(view.get("createdAt"))
        subject: dict[str, Any] = view["subject"] if isinstance(view.get("subject"), dict) else {}
        sub_did = subject.get("did") if isinstance(subject.get("did"), str) else None
        sub_uri = subject.get("uri") if isinstance(subject.get("uri"), str) else None
        if ts is None:
            return self.ignore(f"ozone {etype} without a valid createdAt")
        eid = f"ozone/event/{view.get('id')}"
        if eid in self._ozone_ids:
            eid = f"ozone/{group}/event/{view.get('id')}"
        if eid in self._ozone_ids:
            return self.ignore("ozone duplicate event id")
        base = {"id": eid[:128], "ts": ts, "platform": self.moderation_platform, "raw": view}
        ev = view["event"]
        if etype == "modEventReport":
            reporter = view.get("createdBy")
            if not isinstance(reporter, str) or not reporter:
                return self.ignore("ozone report without createdBy")
            parts = _split_uri(sub_uri)
            if sub_did:
                subj = {"kind": "account", "id": sub_did}
            elif parts and parts[1] == PROFILE:
                subj = {"kind": "account", "id": parts[0]}
            elif parts:
                subj = {"kind": "post", "id": sub_uri}
            else:
                return self.ignore("ozone report without a repoRef/strongRef subject")
            out: dict[str, Any] = {**base, "type": "report.create", "actor": reporter, "subject": subj,
                                   "reason": reason_of(ev.get("reportType"))}
            if isinstance(ev.get("comment"), str):
                out["text"] = ev["comment"]
            self._ozone_ids.add(eid)
            return self._emit([out])
        if etype in ("modEventTakedown", "modEventReverseTakedown", "accountEvent"):
            if not sub_did:
                return self.ignore(f"ozone {etype} on a record")
            if etype == "accountEvent":
                status = str(ev.get("status", ""))
                if ev.get("active") is not False:
                    return self.ignore("ozone accountEvent active")
                if status in SUSPENDED_STATUSES:
                    fields = {"status": "suspended", "by": "platform", "reason": status}
                elif status in USER_STATUSES:
                    fields = {"status": USER_STATUSES[status], "by": "user", "reason": status}
                else:
                    return self.ignore(f"ozone accountEvent status {status!r}")
            else:
                comment = ev.get("comment") if isinstance(ev.get("comment"), str) else None
                fields = {"status": "suspended" if etype == "modEventTakedown" else "active", "by": "platform",
                          "reason": comment or ("takedown" if etype == "modEventTakedown" else "reverse takedown")}
            self._ozone_ids.add(eid)
            return self._emit([{**base, "type": "account.status", "actor": sub_did, **fields}])
        return self.ignore(f"ozone {etype}")

    def ozone_events(self, views: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for group, view in views:
            out.extend(self.ozone_event(view, group))
        out.sort(key=lambda e: (e["ts"], e["id"]))
        return out


def _b64(text: str) -> bytes:
    text = text.strip()
    alt = b"-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)


# --------------------------------------------------------------------------------------------------------------
# file shapes


def _groups(obj: Any, key: str) -> list[tuple[str, list[Any]]] | None:
    """``key`` lists of an Ozone query output: top level, or under named groups (the Cypress fixtures)."""
    if isinstance(obj, dict):
        if isinstance(obj.get(key), list):
            return [("", obj[key])]
        found = [(str(k), v[key]) for k, v in obj.items() if isinstance(v, dict) and isinstance(v.get(key), list)]
        return found or None
    return None


def _is_mod_event_view(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("event"), dict) and "createdBy" in v


def records_in(shape: str, obj: Any) -> int:
    """How many source records a decoded document of ``shape`` holds (the accounting unit of map_file)."""
    if shape == "capture":
        posts = obj.get("postRecords")
        return 1 + (len(posts) if isinstance(posts, list) else 0)
    if shape == "firehose-commit":
        return AtprotoMapper.commit_records(obj)
    if shape == "relay-scenario":
        total = 0
        for m in obj["messages"]:
            frame = m.get("frame") if isinstance(m, dict) else None
            hdr = frame.get("header") if isinstance(frame, dict) else None
            body = frame.get("body") if isinstance(frame, dict) else None
            is_commit = isinstance(hdr, dict) and hdr.get("t") == "#commit" and isinstance(body, dict)
            total += AtprotoMapper.commit_records(body) if is_commit and isinstance(body, dict) else 1
        return total
    if shape == "ozone-events":
        return sum(len(v) for _, v in _groups(obj, "events") or [("", obj)])
    if shape == "ozone-statuses":
        return sum(len(v) for _, v in _groups(obj, "subjectStatuses") or [])
    return 1


def detect_shape(name: str, obj: Any) -> str:
    """The shape of a decoded JSON document (``name`` is the file name, for hints)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("accountMeta"), dict):
            return "capture"
        if isinstance(obj.get("ops"), list) and ("repo" in obj or "blocks" in obj):
            return "firehose-commit"
        if isinstance(obj.get("messages"), list):
            return "relay-scenario"
        if isinstance(obj.get("header"), dict) and "body" in obj:
            return "relay-frame"
        if _groups(obj, "subjectStatuses"):
            return "ozone-statuses"
        groups = _groups(obj, "events")
        if groups and all(_is_mod_event_view(v) for _, vs in groups for v in vs):
            return "ozone-events"
        if "kind" in obj and "did" in obj and "time_us" in obj:
            return "jetstream"
        if "commit_dids" in obj or "jetstream_url" in obj or name == "manifest.json":
            return "manifest"
    if isinstance(obj, list) and obj and all(_is_mod_event_view(v) for v in obj):
        return "ozone-events"
    return "unknown-json"


def map_bytes(name: str, data: bytes, mapper: AtprotoMapper | None = None) -> MappedFile:
    """Map the bytes of a file named ``name`` (the shape is detected from the content). Never raises."""
    m = mapper or AtprotoMapper()
    records0, mapped0, ignored0 = m.records, m.mapped, m.ignored
    shape, events = _map_bytes(name, data, m)
    return MappedFile(shape, events, m.ignored - ignored0, m.records - records0, m.mapped - mapped0)


def _map_bytes(name: str, data: bytes, m: AtprotoMapper) -> tuple[str, list[dict[str, Any]]]:
    if data.startswith(b"\x28\xb5\x2f\xfd") or name.endswith(".zst"):
        reason = "DID documents (not events)" if "did_doc" in name else "zstd-compressed file (not read)"
        return "compressed", m.ignore(reason)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", m.ignore("not a UTF-8 text file")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if name.endswith((".jsonl", ".ndjson")) or (lines and lines[0].lstrip().startswith("{")):
            return "jetstream-jsonl", _jsonl(lines, m)
        return "not-json", m.ignore("not an event file (not JSON)")
    shape = detect_shape(name, obj)
    if shape == "jetstream":
        return "jetstream-jsonl", m.jetstream(obj)
    if shape == "capture":
        return shape, m.capture(obj)
    if shape == "firehose-commit":
        return shape, m.firehose_commit(obj)
    if shape == "relay-frame":
        return shape, m.relay_frame(obj)
    if shape == "relay-scenario":
        out: list[dict[str, Any]] = []
        for msg in obj["messages"]:
            out.extend(m.relay_frame(msg))
        return shape, out
    if shape == "ozone-events":
        groups = _groups(obj, "events") or [("", obj)]
        return shape, m.ozone_events((g, v) for g, vs in groups for v in vs)
    if shape == "ozone-statuses":
        return shape, m.ignore("ozone subject status view (not an event)", records_in(shape, obj))
    if shape == "manifest":
        return shape, m.ignore("capture manifest")
    return shape, m.ignore("unrecognised JSON document")


def _jsonl(lines: list[str], m: AtprotoMapper) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            m.ignore("invalid JSON line")
            continue
        out.extend(m.jetstream(msg))
    return out


def map_path(path: Path | str, mapper: AtprotoMapper | None = None) -> MappedFile:
    """Map one file of any supported shape (see the module docstring). Never raises."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        reason = f"unreadable file ({exc.__class__.__name__})"
        if mapper is not None:
            mapper.ignore(reason)
        return MappedFile("unreadable", [], Counter({reason: 1}), 1, 0)
    return map_bytes(p.name, data, mapper)


def map_file(path: Path | str) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Canonical event dicts of one file, and what was ignored, by reason. Never raises."""
    res = map_path(path)
    return res.events, res.ignored


__all__ = ["AtprotoMapper", "CarFile", "CborError", "MappedFile", "cid_string", "decode_dag_cbor",
           "detect_shape", "map_bytes", "map_file", "map_path", "read_car", "reason_of", "records_in"]

"""``com.atproto.label.defs#label`` records: building, signing, checking, and their JSON and event-stream forms.

A label is ``{ver, src, uri, cid?, val, neg?, cts, exp?, sig}``. ``sig`` is the labeler key's signature over the
DAG-CBOR encoding of the label without ``sig`` (absent optional fields left out, ``neg`` only when true), as
atproto's own labeler (Ozone) signs them. In JSON, bytes are ``{"$bytes": base64}`` (standard alphabet, no
padding); on ``subscribeLabels`` each message is a DAG-CBOR header ``{op: 1, t: "#labels"}`` followed by a
DAG-CBOR body ``{seq, labels: [...]}``, and an error is ``{op: -1}`` followed by ``{error, message}``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bastion.labeler import cbor
from bastion.labeler.keys import SigningKey

MAX_VAL_BYTES = 128
# atproto's DID syntax (https://atproto.com/specs/did) and AT URI syntax, restricted to what a label names:
# an account (a DID) or a record (at://DID/collection/rkey) or a repository (at://DID).
DID_RE = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
AT_URI_RE = re.compile(r"^at://did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]"
                       r"(/[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+)+(/[A-Za-z0-9._:~-]{1,512})?)?$")
CID_RE = re.compile(r"^b[a-z2-7]{50,}$")                      # base32 CIDv1, as atproto writes them
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")   # what we write: ms, UTC, Z
IDENTIFIER_RE = re.compile(r"^!?[a-z][a-z0-9-]*$")
LABEL_FIELDS = ("ver", "src", "uri", "cid", "val", "neg", "cts", "exp", "sig")

# Bastion label -> atproto label value. Labels are public: only these are published unless
# labeler_publish_unmapped is set. One Bastion label per value, so a removal negates exactly what it added.
DEFAULT_VALUES: dict[str, str] = {
    "spam": "spam",
    "abuse": "abuse",
    "hate": "hate",
    "likely_bot": "bot",
    "scam_phrase": "scam",
    "coordinated": "coordinated",
    "campaign_member": "campaign-member",
    "linked_evader": "ban-evader",
}


class LabelError(ValueError):
    pass


def rfc3339_ms(epoch_ms: int) -> str:
    """``2026-11-20T00:00:00.000Z``: atproto datetime, millisecond precision, UTC.

    >>> rfc3339_ms(1_795_132_800_000)
    '2026-11-20T00:00:00.000Z'
    """
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_rfc3339_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise LabelError(f"datetime {text!r} has no timezone")
    return int(dt.timestamp() * 1000)


def sanitize_value(name: str) -> str:
    """A Bastion label name as an atproto label identifier (``[a-z-]``-style: lower case, ``_`` -> ``-``).

    >>> sanitize_value("Reply_Fanout"), sanitize_value("__")
    ('reply-fanout', '')
    """
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return out if out and out[0].isalpha() else ""


class ValueMap:
    """Which atproto value a Bastion label is published as, or None (not published)."""

    def __init__(self, values: Mapping[str, str] | None = None, publish_unmapped: bool = False) -> None:
        merged = {**DEFAULT_VALUES, **(values or {})}      # settings add to and override the defaults
        for name, val in merged.items():
            if not isinstance(val, str):
                raise LabelError(f"labeler value for {name!r} must be text, got {val!r}")
            if val in ("", "-"):
                continue
            if len(val.encode()) > MAX_VAL_BYTES or not IDENTIFIER_RE.match(val):
                raise LabelError(f"labeler value {val!r} for {name!r}: use lower-case letters, digits and '-' "
                                 f"(a leading '!' for global values), at most {MAX_VAL_BYTES} bytes")
        self.values = merged
        self.publish_unmapped = publish_unmapped

    def value_of(self, label: str) -> str | None:
        if label in self.values:
            val = self.values[label]
            return None if val in ("", "-") else val
        if not self.publish_unmapped:
            return None
        val = sanitize_value(label)[:MAX_VAL_BYTES].rstrip("-")
        return val or None


def subject_uri(kind: str, subject_id: str) -> str | None:
    """The ``uri`` of a label on a Bastion subject: an account's DID or a post's at:// URI (events from Bluesky
    carry both); None for subjects with no atproto identity (ip, device, cluster, ids from other platforms)."""
    if kind == "account" and len(subject_id) <= 2048 and DID_RE.match(subject_id):
        return subject_id
    if kind == "post" and len(subject_id) <= 8192 and AT_URI_RE.match(subject_id):
        return subject_id
    return None


def unsigned_label(src: str, uri: str, val: str, cts: str, *, cid: str | None = None, neg: bool = False,
                   exp: str | None = None) -> dict[str, Any]:
    label: dict[str, Any] = {"ver": 1, "src": src, "uri": uri, "val": val, "cts": cts}
    if cid:
        label["cid"] = cid
    if neg:
        label["neg"] = True
    if exp:
        label["exp"] = exp
    check_label(label, signed=False)
    return label


def signing_bytes(label: Mapping[str, Any]) -> bytes:
    """What ``sig`` signs: the DAG-CBOR of the label without ``sig``."""
    return cbor.encode({k: v for k, v in label.items() if k != "sig"})


def sign_label(label: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    body = {k: v for k, v in label.items() if k != "sig"}
    return {**body, "sig": key.sign(signing_bytes(body))}


def check_label(label: Mapping[str, Any], signed: bool = True) -> None:
    """Raise :class:`LabelError` unless the label has the lexicon's fields and formats."""
    extra = set(label) - set(LABEL_FIELDS)
    if extra:
        raise LabelError(f"unknown label fields {sorted(extra)}")
    for name in ("src", "uri", "val", "cts"):
        if not isinstance(label.get(name), str) or not label[name]:
            raise LabelError(f"label field {name} is required text")
    if label.get("ver", 1) != 1:
        raise LabelError("label ver must be 1")
    if not DID_RE.match(label["src"]):
        raise LabelError(f"label src {label['src']!r} is not a DID")
    if not (DID_RE.match(label["uri"]) or AT_URI_RE.match(label["uri"])):
        raise LabelError(f"label uri {label['uri']!r} is neither a DID nor an at:// URI")
    if len(label["val"].encode()) > MAX_VAL_BYTES:
        raise LabelError(f"label val longer than {MAX_VAL_BYTES} bytes")
    for name in ("cts", "exp"):
        if name in label and not DATETIME_RE.match(str(label[name])):
            raise LabelError(f"label {name} {label[name]!r} is not an RFC 3339 UTC datetime with milliseconds")
    if "cid" in label and not (isinstance(label["cid"], str) and CID_RE.match(label["cid"])):
        raise LabelError(f"label cid {label['cid']!r} is not a base32 CID")
    if "neg" in label and label["neg"] is not True:
        raise LabelError("label neg is written only when true")
    if signed and not (isinstance(label.get("sig"), bytes) and len(label["sig"]) == 64):
        raise LabelError("label sig must be 64 bytes")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def to_json(label: Mapping[str, Any]) -> dict[str, Any]:
    """The atproto JSON form: bytes as ``{"$bytes": base64}``."""
    return {k: ({"$bytes": b64(v)} if isinstance(v, bytes) else v) for k, v in label.items()}


def labels_frame(seq: int, labels: list[dict[str, Any]]) -> bytes:
    return cbor.encode({"op": 1, "t": "#labels"}) + cbor.encode({"seq": seq, "labels": labels})


def error_frame(error: str, message: str) -> bytes:
    return cbor.encode({"op": -1}) + cbor.encode({"error": error, "message": message})

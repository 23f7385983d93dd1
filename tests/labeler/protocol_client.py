"""A test client for the atproto label protocol that shares no code with bastion.labeler: it decodes frames
with cbor2, re-encodes the signed bytes with cbor2's canonical mode (length-first key order, as DAG-CBOR),
decodes did:key itself and verifies with ``cryptography``, and checks fields against the lexicon
(com.atproto.label.defs#label, read from the atproto repository at d6296a1c)."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# lexicon com.atproto.label.defs#label: properties and required fields
LEXICON_FIELDS = {"ver", "src", "uri", "cid", "val", "neg", "cts", "exp", "sig"}
LEXICON_REQUIRED = {"src", "uri", "val", "cts"}
# atproto datetime: RFC 3339 with timezone; Bastion writes milliseconds and Z, as the real captures do
CTS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
CURVES = {b"\xe7\x01": (ec.SECP256K1(), 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141),
          b"\x80\x24": (ec.SECP256R1(), 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)}


def did_key_public(did_key: str) -> tuple[ec.EllipticCurvePublicKey, int]:
    assert did_key.startswith("did:key:z")
    n = 0
    for ch in did_key[len("did:key:z"):]:
        n = n * 58 + ALPHABET.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    curve, order = CURVES[raw[:2]]
    assert len(raw) == 2 + 33, "compressed point expected"
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw[2:]), order


def decode_frame(message: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event-stream message: two concatenated CBOR objects, header then body, nothing after."""
    fh = io.BytesIO(message)
    dec = cbor2.CBORDecoder(fh)
    header, body = dec.decode(), dec.decode()
    assert fh.read() == b"", "bytes after the body"
    return header, body


def canonical(label: dict[str, Any]) -> bytes:
    return cbor2.dumps({k: v for k, v in label.items() if k != "sig"}, canonical=True)


def verify_sig(label: dict[str, Any], did_key: str) -> None:
    """Raise unless ``sig`` is a 64-byte low-S signature of the label's canonical CBOR by the key."""
    pub, order = did_key_public(did_key)
    sig = label["sig"]
    assert isinstance(sig, bytes) and len(sig) == 64
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert 0 < s <= order // 2, "high-S signature"
    try:
        pub.verify(encode_dss_signature(r, s), canonical(label), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError(f"bad signature on {label}") from None


def check_lexicon(label: dict[str, Any]) -> None:
    assert set(label) <= LEXICON_FIELDS, set(label) - LEXICON_FIELDS
    assert set(label) >= LEXICON_REQUIRED
    assert label.get("ver") == 1
    assert label["src"].startswith("did:")
    assert label["uri"].startswith(("did:", "at://"))
    assert isinstance(label["val"], str) and 0 < len(label["val"].encode()) <= 128
    assert CTS_RE.match(label["cts"]), label["cts"]
    if "exp" in label:
        assert CTS_RE.match(label["exp"]) and label["exp"] > label["cts"]
    if "neg" in label:
        assert label["neg"] is True


def from_json(label: dict[str, Any]) -> dict[str, Any]:
    """A JSON label back to its data-model form (``{"$bytes": b64}`` -> bytes, padding optional)."""
    out = dict(label)
    sig = out.get("sig")
    if isinstance(sig, dict):
        assert set(sig) == {"$bytes"}
        text = sig["$bytes"]
        out["sig"] = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    return out

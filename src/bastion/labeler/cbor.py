"""A small DAG-CBOR encoder: the deterministic CBOR subset atproto signs and streams.

DAG-CBOR (https://ipld.io/specs/codecs/dag-cbor/spec/) is CBOR with one encoding per value: integers and
lengths in their shortest form, definite lengths only, floats always 64-bit, map keys text only and sorted
length-first then bytewise, no tags except CID links (tag 42, not needed for labels and not produced here).

>>> encode({"op": 1, "t": "#labels"}).hex()   # "t" sorts before "op": shorter key first
'a2617467236c6162656c73626f7001'
>>> encode([0, -1, 23, 24, True, None, b"\\x01", "é"]).hex()
'880020171818f5f6410162c3a9'
"""

from __future__ import annotations

import math
import struct
from typing import Any

MAX_DEPTH = 64


class CborEncodeError(ValueError):
    pass


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    if n < 0x1_0000_0000_0000_0000:
        return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")
    raise CborEncodeError(f"integer {n} does not fit in 64 bits")


def _key_order(item: tuple[bytes, Any]) -> tuple[int, bytes]:
    return (len(item[0]), item[0])


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CborEncodeError(f"nested deeper than {MAX_DEPTH}")
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CborEncodeError("DAG-CBOR has no NaN or infinities")
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(3, len(raw))
        out += raw
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(2, len(raw))
        out += raw
    elif isinstance(value, (list, tuple)):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise CborEncodeError(f"DAG-CBOR map keys must be text, got {type(k).__name__}")
            items.append((k.encode("utf-8"), v))
        items.sort(key=_key_order)
        out += _head(5, len(items))
        for kb, v in items:
            out += _head(3, len(kb))
            out += kb
            _encode(v, out, depth + 1)
    else:
        raise CborEncodeError(f"cannot encode {type(value).__name__} as DAG-CBOR")


def encode(value: Any) -> bytes:
    """The DAG-CBOR bytes of ``value`` (None, bool, int, float, str, bytes, list/tuple, dict with str keys)."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)

"""DAG-CBOR and CAR v1 decoding for the firehose adapters (:mod:`bastion.events.atproto`): a ``#commit`` body
carries its records as a CAR file of DAG-CBOR blocks. Pure functions over bytes; malformed input raises
:class:`CborError` (the adapters catch it and count the record as ignored).

>>> header = bytes.fromhex("a26776657273696f6e0165726f6f747380")  # {"version": 1, "roots": []}
>>> block = bytes.fromhex("0155000568656c6c6f")  # CIDv1, raw codec, identity multihash of b"hello"
>>> car = read_car(bytes([len(header)]) + header + bytes([len(block)]) + block)
>>> car.roots, car.blocks
([], {'bafkqablimvwgy3y': b''})
>>> decode_dag_cbor(bytes.fromhex("a2616101616282f5f6"))
{'a': 1, 'b': [True, None]}
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Any


class CborError(ValueError):
    """Bytes that are not valid (DAG-)CBOR, or a CAR file that is not valid."""


_MAX_DEPTH = 256
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def cid_string(cid: bytes) -> str:
    """The canonical string of binary CID: base58btc for CIDv0, multibase base32-lower (``b…``) for CIDv1."""
    if len(cid) == 34 and cid[0] == 0x12 and cid[1] == 0x20:
        return _b58(cid)
    return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint (multiformats) at ``pos``: (value, position after it)."""
    value = shift = 0
    for i in range(9):
        if pos + i >= len(data):
            raise CborError("truncated varint")
        b = data[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise CborError("varint longer than 9 bytes")


def _cid_length(data: bytes, pos: int, end: int) -> tuple[int, int | None, bytes]:
    """Length of the binary CID at ``pos`` (not past ``end``), its multihash code and digest."""
    if end - pos >= 34 and data[pos] == 0x12 and data[pos + 1] == 0x20:  # CIDv0: bare sha2-256 multihash
        return 34, 0x12, data[pos + 2:pos + 34]
    version, p = _uvarint(data, pos)
    if version != 1:
        raise CborError(f"unsupported CID version {version}")
    _codec, p = _uvarint(data, p)
    code, p = _uvarint(data, p)
    size, p = _uvarint(data, p)
    if p + size > end:
        raise CborError("truncated CID")
    return p + size - pos, code, data[p:p + size]


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CborError("truncated CBOR")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            return self._take(1)[0]
        if info == 25:
            return int(struct.unpack(">H", self._take(2))[0])
        if info == 26:
            return int(struct.unpack(">I", self._take(4))[0])
        if info == 27:
            return int(struct.unpack(">Q", self._take(8))[0])
        if info == 31:
            raise CborError("indefinite length is not allowed in DAG-CBOR")
        raise CborError(f"reserved additional info {info}")

    def item(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise CborError("CBOR nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        arg = self._arg(info)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major == 2:
            return self._take(arg)
        if major == 3:
            try:
                return self._take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise CborError("text string is not UTF-8") from None
        if major == 4:
            if arg > len(self.data) - self.pos:
                raise CborError("array longer than the data")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > len(self.data) - self.pos:
                raise CborError("map longer than the data")
            out: dict[str, Any] = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise CborError("map key is not a string")
                out[key] = self.item(depth + 1)
            return out
        # major 6: tags; DAG-CBOR allows only 42 (a CID link: byte string, 0x00 prefix + binary CID)
        if arg != 42:
            raise CborError(f"unsupported CBOR tag {arg}")
        raw = self.item(depth + 1)
        if not isinstance(raw, bytes) or not raw or raw[0] != 0:
            raise CborError("tag 42 is not a byte string with a 0x00 prefix")
        return {"$link": cid_string(raw[1:])}

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return _half(self._take(2))
        if info == 26:
            return float(struct.unpack(">f", self._take(4))[0])
        if info == 27:
            return float(struct.unpack(">d", self._take(8))[0])
        if info == 24:
            self._take(1)
            return None
        raise CborError(f"unsupported simple value {info}")


def _half(b: bytes) -> float:
    h = (b[0] << 8) | b[1]
    exp, mant = (h >> 10) & 0x1F, h & 0x3FF
    if exp == 0:
        val = mant * 2.0 ** -24
    elif exp == 31:
        val = float("nan") if mant else float("inf")
    else:
        val = (mant + 1024) * 2.0 ** (exp - 25)
    return -val if h & 0x8000 else val


def _jsonable(value: Any) -> Any:
    """atproto's JSON form of decoded data: byte strings as ``{"$bytes": base64}``."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii").rstrip("=")}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def decode_dag_cbor(data: bytes, json_form: bool = True) -> Any:
    """Decode one DAG-CBOR value; links become ``{"$link": cid}``, bytes ``{"$bytes": b64}`` (``json_form``).

    Raises :class:`CborError` on anything malformed, including trailing bytes."""
    dec = _Decoder(bytes(data))
    value = dec.item()
    if dec.pos != len(dec.data):
        raise CborError(f"{len(dec.data) - dec.pos} trailing bytes after the CBOR value")
    return _jsonable(value) if json_form else value


@dataclass
class CarFile:
    roots: list[str]
    blocks: dict[str, bytes]
    bad_blocks: int = 0  # blocks whose sha2-256 digest does not match their CID


def read_car(data: bytes) -> CarFile:
    """Parse a CAR v1 file: header (varint length + DAG-CBOR ``{version: 1, roots}``), then blocks of
    varint length + binary CID + data. Blocks are keyed by their CID string; sha2-256 digests are checked and
    mismatching blocks left out (counted in ``bad_blocks``). Raises :class:`CborError` when malformed."""
    data = bytes(data)
    hlen, pos = _uvarint(data, 0)
    if pos + hlen > len(data):
        raise CborError("truncated CAR header")
    header = decode_dag_cbor(data[pos:pos + hlen])
    if not isinstance(header, dict) or header.get("version") != 1:
        raise CborError("not a CAR v1 header")
    roots = [r["$link"] for r in header.get("roots") or [] if isinstance(r, dict) and "$link" in r]
    pos += hlen
    car = CarFile(roots, {})
    while pos < len(data):
        blen, pos = _uvarint(data, pos)
        end = pos + blen
        if end > len(data):
            raise CborError("truncated CAR block")
        clen, code, digest = _cid_length(data, pos, end)
        cid = cid_string(data[pos:pos + clen])
        body = data[pos + clen:end]
        if code == 0x12 and hashlib.sha256(body).digest() != digest:
            car.bad_blocks += 1
        else:
            car.blocks[cid] = body
        pos = end
    return car


__all__ = ["CarFile", "CborError", "cid_string", "decode_dag_cbor", "read_car"]

"""The labeler's signing key: secp256k1 ("k256") or NIST P-256, the two curves atproto allows.

A signature is ECDSA over SHA-256 of the message, in the 64-byte compact form ``r || s`` (big-endian, 32 bytes
each) with ``s`` normalised to the lower half of the curve order ("low-S"), which atproto verifiers require.
The public key is published as multibase (base58btc, ``z`` prefix) of the multicodec-prefixed compressed
point (``0xe7 0x01`` secp256k1-pub, ``0x80 0x24`` p256-pub); as a DID, ``did:key:`` + that string. That value
goes in the labeler's DID document as the ``#atproto_label`` verification method.

Private keys are read from a PEM (PKCS#8) file, written by :func:`write_new_key` with mode 0600, or from a
string: the same PEM text, or the multibase private-key form (``0x81 0x26`` secp256k1-priv, ``0x86 0x26``
p256-priv) that atproto tools print.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

log = logging.getLogger("bastion.labeler")


class LabelerKeyError(ValueError):
    """A key that cannot be read or used; the message says which and why."""


@dataclass(frozen=True)
class Curve:
    name: str
    ec_curve: ec.EllipticCurve
    order: int
    pub_prefix: bytes
    priv_prefix: bytes


CURVES = {
    "k256": Curve("k256", ec.SECP256K1(),
                  0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141, b"\xe7\x01", b"\x81\x26"),
    "p256": Curve("p256", ec.SECP256R1(),
                  0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551, b"\x80\x24", b"\x86\x26"),
}
_BY_EC_NAME = {c.ec_curve.name: c for c in CURVES.values()}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    """Base58 (bitcoin alphabet).

    >>> b58encode(b"\\x00hello world")
    '1StV1DL6CwTryKyV'
    """
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58.find(ch)
        if i < 0:
            raise LabelerKeyError(f"not base58: character {ch!r}")
        n = n * 58 + i
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def _curve_of(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> Curve:
    curve = _BY_EC_NAME.get(key.curve.name)
    if curve is None:
        raise LabelerKeyError(f"curve {key.curve.name} is not allowed by atproto (use secp256k1 or P-256)")
    return curve


def public_multibase(pub: ec.EllipticCurvePublicKey) -> str:
    curve = _curve_of(pub)
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return "z" + b58encode(curve.pub_prefix + point)


def parse_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """A ``did:key:z...`` or a bare multibase ``z...`` public key."""
    mb = text.removeprefix("did:key:")
    if not mb.startswith("z"):
        raise LabelerKeyError("a public key is multibase base58btc and starts with 'z'")
    raw = b58decode(mb[1:])
    for curve in CURVES.values():
        if raw.startswith(curve.pub_prefix):
            return ec.EllipticCurvePublicKey.from_encoded_point(curve.ec_curve, raw[len(curve.pub_prefix):])
    raise LabelerKeyError("unknown multicodec prefix: not a secp256k1 or P-256 public key")


def verify(public_key: str | ec.EllipticCurvePublicKey, data: bytes, sig: bytes) -> bool:
    """Whether ``sig`` (64-byte compact, low-S) is a valid signature of ``data`` by the key; high-S and DER
    signatures are refused, as atproto verifiers do."""
    pub = parse_public_key(public_key) if isinstance(public_key, str) else public_key
    curve = _curve_of(pub)
    if len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < curve.order and 0 < s <= curve.order // 2):
        return False
    try:
        pub.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class SigningKey:
    """A private key that signs atproto-style (SHA-256, compact, low-S)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.curve = _curve_of(private_key)
        self._key = private_key

    @classmethod
    def generate(cls, curve: str = "k256") -> SigningKey:
        if curve not in CURVES:
            raise LabelerKeyError(f"unknown curve {curve!r}: use k256 (secp256k1) or p256")
        return cls(ec.generate_private_key(CURVES[curve].ec_curve))

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """PEM (PKCS#8 or SEC1) text, or a multibase private key (``z...``)."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            try:
                key = serialization.load_pem_private_key(text.encode(), password=None)
            except (ValueError, TypeError) as exc:
                raise LabelerKeyError(f"not a readable unencrypted PEM private key: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise LabelerKeyError("the PEM key is not an elliptic-curve key (use secp256k1 or P-256)")
            return cls(key)
        if text.startswith("z"):
            raw = b58decode(text[1:])
            for curve in CURVES.values():
                if raw.startswith(curve.priv_prefix) and len(raw) == len(curve.priv_prefix) + 32:
                    scalar = int.from_bytes(raw[len(curve.priv_prefix):], "big")
                    if not 0 < scalar < curve.order:
                        raise LabelerKeyError("the private key is out of range for its curve")
                    return cls(ec.derive_private_key(scalar, curve.ec_curve))
            raise LabelerKeyError("multibase private key without a secp256k1-priv or p256-priv prefix")
        raise LabelerKeyError("a private key is PEM text (-----BEGIN ...) or multibase (z...)")

    @classmethod
    def from_file(cls, path: Path) -> SigningKey:
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            raise LabelerKeyError(f"cannot read the labeler key {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("labeler key %s is readable by other users (mode %o); chmod 600 it", path,
                        stat.S_IMODE(mode))
        try:
            return cls.from_text(text)
        except LabelerKeyError as exc:
            raise LabelerKeyError(f"{path}: {exc}") from None

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def multibase(self) -> str:
        return public_multibase(self.public_key)

    @property
    def did_key(self) -> str:
        return "did:key:" + self.multibase

    def private_multibase(self) -> str:
        scalar = self._key.private_numbers().private_value
        return "z" + b58encode(self.curve.priv_prefix + scalar.to_bytes(32, "big"))

    def pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        if s > self.curve.order // 2:
            s = self.curve.order - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def write_new_key(path: Path, curve: str = "k256", force: bool = False) -> SigningKey:
    """A new key written to ``path`` (PEM, PKCS#8) readable by its owner only (0600); an existing file is
    kept unless ``force``."""
    key = SigningKey.generate(curve)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise LabelerKeyError(f"{path} exists; pass --force to replace it (the old key's labels then no "
                        "longer verify against the published key)") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(key.pem())
    return key

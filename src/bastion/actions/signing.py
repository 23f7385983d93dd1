"""Signed webhook deliveries, in the style of Stripe's and GitHub's.

Each delivery carries ``Bastion-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256(secret, ``"{t}.{body}"``) over the exact bytes of the body, and ``Bastion-Delivery: <id>``, an
id that stays the same across retries of one delivery (receivers use it to drop repeats). A receiver calls
:func:`verify` with the raw body *before* parsing it:

>>> header = sign("whsec_test", b'{"actions":[]}', timestamp=1_795_132_800)
>>> header
't=1795132800,v1=ff031553300ab17f2ce9de411b43573cf04599dc41c1da1864bcf9db88231666'
>>> verify("whsec_test", header, b'{"actions":[]}', now=1_795_132_810)
1795132800
>>> verify("whsec_test", header, b'{"actions":[1]}', now=1_795_132_810)
Traceback (most recent call last):
...
bastion.actions.signing.SignatureError: no v1 signature matches the body
>>> verify("whsec_test", header, b'{"actions":[]}', now=1_795_133_200)
Traceback (most recent call last):
...
bastion.actions.signing.SignatureError: timestamp is 400s from now, outside the 300s tolerance

Several ``v1=`` entries may appear (while a secret is rotated, Bastion signs with each configured secret);
one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "Bastion-Signature"
DELIVERY_HEADER = "Bastion-Delivery"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``secret``."""
    return hmac.new(_as_bytes(secret), str(int(timestamp)).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secrets: str | bytes | Iterable[str | bytes], body: bytes, timestamp: int | None = None) -> str:
    """The ``Bastion-Signature`` header value for ``body``: one ``v1=`` per secret."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    keys = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    if not keys or not all(keys):
        raise ValueError("a webhook signing secret must not be empty")
    return ",".join([f"t={t}"] + [f"v1={signature(k, t, body)}" for k in keys])


def verify(secret: str | bytes, header: str | None, body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> int:
    """Check a ``Bastion-Signature`` header against the raw ``body``; returns the signed timestamp.

    Raises :class:`SignatureError` when the header is missing or malformed, when its timestamp is more than
    ``tolerance_s`` seconds from ``now`` (a replayed delivery), or when no ``v1`` signature matches (compared
    in constant time)."""
    if not secret:
        raise ValueError("the signing secret must not be empty")
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed timestamp in the signature header")
            ts = int(value)
        elif key == "v1":
            sigs.append(value)
    if ts is None:
        raise SignatureError("no timestamp in the signature header")
    if not sigs:
        raise SignatureError("no v1 signature in the signature header")
    skew = abs((time.time() if now is None else now) - ts)
    if skew > tolerance_s:
        raise SignatureError(f"timestamp is {skew:.0f}s from now, outside the {tolerance_s:.0f}s tolerance")
    expected = signature(secret, ts, body).encode()
    ok = False
    for sig in sigs:  # every candidate is compared, so the time taken does not say which one matched
        ok |= hmac.compare_digest(expected, sig.encode())
    if not ok:
        raise SignatureError("no v1 signature matches the body")
    return ts

"""One typed settings object, built once (from a TOML file and ``BASTION_*`` environment variables) and
passed in. Nothing in Bastion reads the environment anywhere else.

>>> s = Settings.load(env={"BASTION_PORT": "9000", "BASTION_QUOTAS": "account.suspend=50"})
>>> s.port, s.quotas
(9000, {'account.suspend': 50})
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    pass


ENVIRONMENTS = ("development", "production")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def find_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The shared real datasets: ``BASTION_DATA_DIR``, else a ``shared/data`` folder beside the repository
    (or beside the current directory)."""
    env = os.environ if env is None else env
    if env.get("BASTION_DATA_DIR"):
        return Path(env["BASTION_DATA_DIR"])
    for base in (REPO_ROOT, Path.cwd(), *Path.cwd().parents):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Settings:
    environment: str = "development"          # development | production (anything else is refused)
    host: str = "127.0.0.1"
    port: int = 8080
    state: str = "memory"                      # memory | sqlite:PATH
    rules_dir: Path | None = None              # None = the default pack in the repository
    models_dir: Path = Path.home() / ".bastion" / "models"
    data_dir: Path = field(default_factory=find_data_dir)
    db_path: Path = Path(".bastion") / "bastion.db"   # review cases, users, audit (embedded)
    webhook_url: str | None = None
    webhook_timeout_s: float = 2.0
    webhook_max_retries: int = 4
    webhook_max_time_s: float = 60.0           # retries of one batch stop once this much time is spent
    # HMAC secret(s) that sign each delivery (Bastion-Signature); comma-separated while rotating, the first
    # is current. Set it from the environment (BASTION_WEBHOOK_SECRET), never in a committed file.
    webhook_secret: str = ""
    slack_webhook_url: str | None = None       # a Slack-compatible incoming webhook (BASTION_SLACK_WEBHOOK_URL)
    slack_min_priority: float = 0.7            # review cases with priority above this are posted
    slack_batch_s: float = 5.0                 # notices are gathered this long into one message
    slack_max_per_minute: int = 6              # messages per minute at most; the excess is summarised
    quotas: dict[str, int] = field(default_factory=lambda: {"account.suspend": 200, "account.limit": 1000})
    secret_key: str = ""
    session_cookie_secure: bool = False        # True by default in production (set it to override)
    trusted_proxies: tuple[str, ...] = ()      # addresses/networks whose X-Forwarded-For is believed
    redis_url: str | None = None
    postgres_url: str | None = None
    ray_address: str | None = None
    enable_embeddings: bool = False
    # issue 16: calibrated bot scores (per-tier calibration, profile-only evidence cap, OOD shrink) from the
    # shipped JSON artifact bastion/artifacts/bot_calibration/calibration.json (BASTION_BOT_CALIBRATION)
    bot_calibration: bool = False
    log_json: bool = True
    # Bounds on every decoded event (bastion.events.limits): ts and profile created_at must lie between
    # event_min_ts (RFC 3339 or epoch ms) and event_max_future_s after the wall clock; strings longer than
    # event_max_text characters, lists longer than event_max_items and raw/unknown fields nested deeper than
    # event_max_depth are refused (dead letter, or a per-event error on the API).
    event_min_ts: str = "2000-01-01T00:00:00Z"
    event_max_future_s: float = 86_400.0
    event_max_text: int = 65_536
    event_max_items: int = 1_000
    event_max_depth: int = 64
    # atproto labeler output (bastion.labeler; docs/integrate.md): label.add/label.remove on accounts (DIDs) and
    # posts (at:// URIs) become signed com.atproto.label.defs#label records in labeler_db_path, served on
    # /xrpc/com.atproto.label.queryLabels and subscribeLabels. The key: a PEM file (labeler_key_path, written by
    # `bastion labeler keygen`) or the key itself in BASTION_LABELER_KEY (PEM or multibase); never in the repo.
    labeler_enabled: bool = False
    labeler_did: str = ""                      # the labeler account's DID (label src)
    labeler_key_path: Path | None = None
    labeler_key: str = ""
    labeler_db_path: Path | None = None        # None = labels.db beside db_path
    labeler_values: dict[str, str] | None = None   # Bastion label -> atproto value; None = the defaults
    labeler_publish_unmapped: bool = False     # publish other labels under their own name (reply_fanout -> reply-fanout)

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"setting environment must be one of {', '.join(ENVIRONMENTS)}, "
                                f"got {self.environment!r}")

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        cfg = path or (Path(env["BASTION_CONFIG"]) if env.get("BASTION_CONFIG") else None)
        if cfg is not None:
            try:
                values.update(tomllib.loads(Path(cfg).read_text()).get("bastion", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"{cfg}: {exc}") from None
        known = {f.name: f for f in fields(cls)}
        for key, raw in env.items():
            if key.startswith("BASTION_") and key not in ("BASTION_CONFIG",):
                name = key[len("BASTION_"):].lower()
                if name in known:
                    values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(unknown)}")
        base = cls()
        converted = {k: _convert(k, known[k].type, v, getattr(base, k)) for k, v in values.items()}
        settings = replace(base, **converted)
        if settings.environment == "production" and "session_cookie_secure" not in converted:
            settings = replace(settings, session_cookie_secure=True)
        if settings.environment == "production" and settings.webhook_url and not settings.webhook_secret:
            raise SettingsError("BASTION_WEBHOOK_SECRET must be set in production when webhook_url is set "
                                "(deliveries are signed with it)")
        if not settings.secret_key:
            if settings.environment == "production":
                raise SettingsError("BASTION_SECRET_KEY must be set in production (no default secret)")
            settings = replace(settings, secret_key=secrets.token_hex(32))
        return settings


def _convert(name: str, annotation: Any, value: Any, default: Any) -> Any:
    """One setting's value from TOML or the environment, or :class:`SettingsError` naming the setting: a value
    that does not parse is refused, never read as a default."""
    if isinstance(default, tuple):
        return _addresses(name, value)
    if not isinstance(value, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SettingsError(f"setting {name} must be true or false, got {value!r}")
        return Path(value) if isinstance(default, Path) and value is not None else value
    if isinstance(default, bool):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise SettingsError(f"setting {name} must be one of {'/'.join(TRUE_WORDS)} or "
                            f"{'/'.join(FALSE_WORDS)}, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise SettingsError(f"setting {name} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            out_f = float(value)
        except ValueError:
            out_f = math.nan
        if not math.isfinite(out_f):
            raise SettingsError(f"setting {name} must be a number, got {value!r}")
        return out_f
    if "dict[str, str]" in str(annotation):     # NAME=VALUE,NAME=VALUE
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            k, sep, v = part.partition("=")
            if not sep or not k.strip():
                raise SettingsError(f"setting {name}: {part!r} is not NAME=VALUE")
            pairs[k.strip()] = v.strip()
        return pairs
    if isinstance(default, dict):
        out: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            k, _, v = part.partition("=")
            try:
                out[k.strip()] = int(v)
            except ValueError:
                raise SettingsError(f"setting {name}: {part!r} is not NAME=INTEGER") from None
        return out
    if isinstance(default, Path) or "Path" in str(annotation):
        return Path(value)
    return value


def _addresses(name: str, value: Any) -> tuple[str, ...]:
    """IP addresses or networks (``10.0.0.0/8``), as a list or comma-separated; anything else is refused
    (``*`` too: trusting every peer's X-Forwarded-For is what this setting exists to avoid)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SettingsError(f"setting {name} must be a list of IP addresses or networks, got {value!r}")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            if "/" in text:
                ipaddress.ip_network(text)
            else:
                ipaddress.ip_address(text)
        except ValueError:
            raise SettingsError(f"setting {name}: {text!r} is not an IP address or network "
                                "(like 10.0.0.5 or 10.0.0.0/8)") from None
        out.append(text)
    return tuple(out)

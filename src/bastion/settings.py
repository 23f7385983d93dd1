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
import tempfile
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
KafkaProps = dict[str, str]   # librdkafka properties (the ``kafka_config`` setting)
# librdkafka properties that hold secrets: never accepted from a settings file, never shown
KAFKA_SECRET_PROPS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                      "sasl.oauthbearer.client.secret", "ssl_engine_callback_data")
FALSE_WORDS = ("0", "false", "no", "off")


def find_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The public data sets (``bastion data fetch`` fills it): ``BASTION_DATA_DIR`` (or its older name
    ``BASTION_SHARED_DATA``), else a ``shared/data`` folder beside the repository or beside the current directory
    or one of its parents, else ``~/.bastion/data``."""
    env = os.environ if env is None else env
    for var in ("BASTION_DATA_DIR", "BASTION_SHARED_DATA"):
        if env.get(var):
            return Path(env[var]).expanduser()
    for base in (REPO_ROOT, Path.cwd(), *Path.cwd().parents):
        for cand in (base.parent / "shared" / "data", base / "shared" / "data"):
            if cand.is_dir():
                return cand
    return Path.home() / ".bastion" / "data"


def data_dir_origin(env: Mapping[str, str] | None = None) -> str:
    """How :func:`find_data_dir` chose the folder, for error messages."""
    env = os.environ if env is None else env
    for var in ("BASTION_DATA_DIR", "BASTION_SHARED_DATA"):
        if env.get(var):
            return f"from {var}"
    return "the default; set BASTION_DATA_DIR to use another"


@dataclass(frozen=True)
class Settings:
    environment: str = "development"          # development | production (anything else is refused)
    host: str = "127.0.0.1"
    port: int = 8080
    state: str = "memory"                      # memory | sqlite:PATH
    rules_dir: Path | None = None              # None = the default pack in the repository
    models_dir: Path = Path.home() / ".bastion" / "models"   # models you train; the shipped ones are packaged
    data_dir: Path = field(default_factory=find_data_dir)     # the public data sets (`bastion data fetch`)
    data_mirror: str | None = None             # `bastion data fetch` source: a mirror laid out like data_dir
    data_upstream: str = "https://raw.githubusercontent.com"   # host of the data sets' published URLs
    cache_dir: Path = Path.home() / ".cache" / "bastion"      # embeddings and context-model feature caches
    torch_threads: int = 1                     # CPU threads of the embedding and fine-tuned text tiers
    replica_key: str = ""                      # seals replica snapshots (scale-out); else a key kept in Redis
    bench_cache: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "bastion-bench")
    bench_redis: str = "redis://127.0.0.1:6379/0"   # `bastion bench scale`
    bench_threads: int = 0                     # `bastion bench linker` threads; 0 = every CPU
    db_path: Path = Path(".bastion") / "bastion.db"   # review cases, users, audit (embedded)
    # the deployment's shared review store, postgresql://USER@HOST/DB?schema=NAME (BASTION_REVIEW_DB): every
    # stream worker and `bastion serve` write and read cases, decisions, users and the audit log there
    # instead of db_path
    review_db: str | None = None
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
    # Kafka clients (the worker's source, `bastion produce`, the actions topic; bastion.sources.kafka): librdkafka
    # properties passed through as they are (security.protocol, sasl.mechanisms, sasl.username, ssl.ca.location,
    # ssl.certificate.location, ssl.key.location, ...), from BASTION_KAFKA_CONFIG (NAME=VALUE,NAME=VALUE) or a
    # [bastion.kafka] table in the settings file. Secrets only from the environment: the SASL password in
    # BASTION_KAFKA_SASL_PASSWORD (a settings file that holds one is refused); neither is ever shown or logged.
    kafka_config: KafkaProps = field(default_factory=dict, repr=False)
    kafka_sasl_password: str = field(default="", repr=False)
    # applied actions to a Kafka topic (bastion.actions.kafka_sink): kafka://HOST:PORT/TOPIC, or TOPIC with
    # bootstrap.servers in kafka_config
    kafka_actions_topic: str | None = None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"setting environment must be one of {', '.join(ENVIRONMENTS)}, "
                                f"got {self.environment!r}")

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values, labels = _raw_values(path, env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(unknown)}")
        base = cls()
        converted = {k: _convert(labels.get(k, f"setting {k}"), known[k].type, v, getattr(base, k))
                     for k, v in values.items()}
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


def _raw_values(path: Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings file's ``[bastion]`` table overlaid with ``BASTION_*`` variables, unconverted, and where
    each value came from (``BASTION_X (setting x)`` or ``FILE: setting x``) for error messages."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    cfg = path or (Path(env["BASTION_CONFIG"]) if env.get("BASTION_CONFIG") else None)
    if cfg is not None:
        try:
            table = tomllib.loads(Path(cfg).read_text()).get("bastion", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{cfg}: {exc}") from None
        if "kafka" in table:   # the [bastion.kafka] table: librdkafka properties
            table["kafka_config"] = table.pop("kafka")
        if table.get("kafka_sasl_password"):
            raise SettingsError(f"{cfg}: setting kafka_sasl_password is a secret: set BASTION_KAFKA_SASL_PASSWORD "
                                "in the environment instead")
        kafka = table.get("kafka_config")
        if isinstance(kafka, dict):
            held = sorted(k for k in kafka if k in KAFKA_SECRET_PROPS)
            if held:
                raise SettingsError(f"{cfg}: [bastion.kafka] {', '.join(held)} is a secret: set it in the "
                                    "environment (BASTION_KAFKA_SASL_PASSWORD, or BASTION_KAFKA_CONFIG), "
                                    "never in a file")
        values.update(table)
        labels.update({k: f"{cfg}: setting {k}" for k in table})
    known = {f.name for f in fields(Settings)}
    for key, raw in env.items():
        if key.startswith("BASTION_") and key != "BASTION_CONFIG":
            name = key[len("BASTION_"):].lower()
            if name in known:
                values[name] = raw
                labels[name] = f"{key} (setting {name})"
    return values, labels


def setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting, for code that runs without a :class:`Settings` object (model helpers, benchmarks): its
    ``BASTION_<NAME>`` variable, else the settings file of ``BASTION_CONFIG``, else the default - converted and
    checked as :meth:`Settings.load` does (a value that does not parse is an error naming the variable).

    >>> setting("torch_threads", env={"BASTION_TORCH_THREADS": "4"})
    4
    >>> setting("enable_embeddings", env={"BASTION_ENABLE_EMBEDDINGS": "maybe"})
    Traceback (most recent call last):
    ...
    bastion.settings.SettingsError: BASTION_ENABLE_EMBEDDINGS (setting enable_embeddings) must be one of 1/true/yes/on or 0/false/no/off, got 'maybe'
    """
    env = os.environ if env is None else env
    known = {f.name: f for f in fields(Settings)}
    if name not in known:
        raise KeyError(name)
    values, labels = _raw_values(None, env)
    default = getattr(Settings(), name)
    if name not in values:
        return default
    return _convert(labels[name], known[name].type, values[name], default)


def _convert(label: str, annotation: Any, value: Any, default: Any) -> Any:
    """One setting's value from TOML or the environment, or :class:`SettingsError` naming where it came from
    (``label``: the variable, or the file and setting): a value that does not parse is refused, never read as a
    default."""
    if isinstance(default, tuple):
        return _addresses(label, value)
    if annotation == "KafkaProps":
        return kafka_props(label, value)
    if not isinstance(value, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SettingsError(f"{label} must be true or false, got {value!r}")
        return Path(value).expanduser() if isinstance(default, Path) and value is not None else value
    if isinstance(default, bool):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise SettingsError(f"{label} must be one of {'/'.join(TRUE_WORDS)} or "
                            f"{'/'.join(FALSE_WORDS)}, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise SettingsError(f"{label} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            out_f = float(value)
        except ValueError:
            out_f = math.nan
        if not math.isfinite(out_f):
            raise SettingsError(f"{label} must be a number, got {value!r}")
        return out_f
    if "dict[str, str]" in str(annotation):     # NAME=VALUE,NAME=VALUE
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            k, sep, v = part.partition("=")
            if not sep or not k.strip():
                raise SettingsError(f"{label}: {part!r} is not NAME=VALUE")
            pairs[k.strip()] = v.strip()
        return pairs
    if isinstance(default, dict):
        out: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            k, _, v = part.partition("=")
            try:
                out[k.strip()] = int(v)
            except ValueError:
                raise SettingsError(f"{label}: {part!r} is not NAME=INTEGER") from None
        return out
    if isinstance(default, Path) or "Path" in str(annotation):
        return Path(value).expanduser()
    return value


def _addresses(label: str, value: Any) -> tuple[str, ...]:
    """IP addresses or networks (``10.0.0.0/8``), as a list or comma-separated; anything else is refused
    (``*`` too: trusting every peer's X-Forwarded-For is what this setting exists to avoid)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SettingsError(f"{label} must be a list of IP addresses or networks, got {value!r}")
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
            raise SettingsError(f"{label}: {text!r} is not an IP address or network "
                                "(like 10.0.0.5 or 10.0.0.0/8)") from None
        out.append(text)
    return tuple(out)


def kafka_props(label: str, value: Any) -> dict[str, str]:
    """librdkafka properties from ``NAME=VALUE,NAME=VALUE`` (a comma not followed by ``NAME=`` belongs to the
    value, as in ``ssl.cipher.suites`` or ``sasl.mechanisms`` lists) or from a TOML table (numbers and booleans
    become the strings librdkafka reads). Values are never echoed in errors: they may be secrets.

    >>> kafka_props("X", "security.protocol=SASL_SSL,sasl.mechanisms=PLAIN,ssl.cipher.suites=A,B")
    {'security.protocol': 'SASL_SSL', 'sasl.mechanisms': 'PLAIN', 'ssl.cipher.suites': 'A,B'}
    """
    import re

    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[str(k)] = "true" if v else "false"
            elif isinstance(v, (str, int, float)):
                out[str(k)] = str(v)
            else:
                raise SettingsError(f"{label}: property {k!r} must be a string, number or boolean")
        return out
    if not isinstance(value, str):
        raise SettingsError(f"{label} must be NAME=VALUE pairs or a table")
    pairs: dict[str, str] = {}
    last: str | None = None
    for part in re.split(r"[,\n]", value):
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9._-]*)\s*=(.*)$", part, re.S)
        if m:
            last = m.group(1)
            pairs[last] = m.group(2).strip()
        elif last is not None:
            pairs[last] += "," + part.strip()
        elif part.strip():
            raise SettingsError(f"{label}: expected NAME=VALUE pairs (like security.protocol=SASL_SSL), "
                                "got a value without a name")
    return pairs

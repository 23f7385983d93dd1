"""The state Protocols. Rules, detectors and features see state only through these; backends (memory,
SQLite; Redis and PostgreSQL for scale-out) implement them and pass one contract test suite."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from bastion.state.model import Account, Label, Post, Report


class AccountStore(Protocol):
    def get(self, account_id: str) -> Account | None: ...

    def get_or_create(self, account_id: str, ts: int) -> Account: ...

    def put(self, account: Account) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Account]: ...


class PostStore(Protocol):
    def get(self, post_id: str) -> Post | None: ...

    def put(self, post: Post) -> None: ...

    def __len__(self) -> int: ...


class GraphStore(Protocol):
    """Directed edges of kind follow, block and mute."""

    def has(self, kind: str, src: str, dst: str) -> bool: ...

    def add(self, kind: str, src: str, dst: str, ts: int) -> bool: ...

    def remove(self, kind: str, src: str, dst: str) -> bool: ...

    def out(self, kind: str, src: str) -> set[str]: ...

    def into(self, kind: str, dst: str) -> set[str]: ...


class IdentifierStore(Protocol):
    """Identifier (kind, value) -> accounts seen with it: ip, ip24 (network), device, email_domain, avatar."""

    def add(self, kind: str, value: str, account_id: str, ts: int) -> bool: ...

    def accounts(self, kind: str, value: str) -> list[str]: ...

    def count(self, kind: str, value: str) -> int: ...


class ReportStore(Protocol):
    def add(self, report: Report) -> None: ...

    def for_subject(self, kind: str, subject_id: str) -> list[Report]: ...


class LabelStore(Protocol):
    def add(self, label: Label) -> bool: ...

    def remove(self, subject_kind: str, subject_id: str, label: str) -> bool: ...

    def active(self, subject_kind: str, subject_id: str, now_ms: int) -> list[Label]: ...

    def has(self, subject_kind: str, subject_id: str, label: str, now_ms: int) -> bool: ...


class SeenStore(Protocol):
    """Event ids already processed: the idempotency key (a redelivered id has no second effect)."""

    def check_and_add(self, event_id: str, ts: int) -> bool:
        """True when the id is new (and now recorded), False when it was seen before."""
        ...


class CounterStore(Protocol):
    """Exact sliding-window counters keyed by (name, key). ``add`` records one occurrence (optionally of a
    distinct ``member``) at ``ts`` and is idempotent per ``event_id``; ``count`` answers over ``window_ms``
    ending at ``now_ms``."""

    def add(self, name: str, key: str, ts: int, event_id: str, member: str | None = None) -> None: ...

    def count(self, name: str, key: str, window_ms: int, now_ms: int) -> int: ...

    def distinct(self, name: str, key: str, window_ms: int, now_ms: int) -> int: ...

    def add_value(self, name: str, key: str, ts: int, event_id: str, value: float) -> None:
        """Record an occurrence weighing ``value`` (the rule language's ``sum()``); idempotent per event."""
        ...

    def sum(self, name: str, key: str, window_ms: int, now_ms: int) -> float: ...


class KeyValueStore(Protocol):
    """Opaque bytes for detectors that keep their own persistent state (linker index, cluster windows)."""

    def get(self, namespace: str, key: str) -> bytes | None: ...

    def put(self, namespace: str, key: str, value: bytes) -> None: ...

    def items(self, namespace: str) -> Iterable[tuple[str, bytes]]: ...

    def delete(self, namespace: str, key: str) -> None:
        """Drop an entry (durable at the next checkpoint, like ``put``); absent keys are ignored."""
        ...


class State(Protocol):
    """Everything the engine keeps, as one object handed to features, rules and detectors."""

    accounts: AccountStore
    posts: PostStore
    graph: GraphStore
    identifiers: IdentifierStore
    reports: ReportStore
    labels: LabelStore
    seen: SeenStore
    counters: CounterStore
    kv: KeyValueStore

    def checkpoint(self, position: dict[str, object]) -> None:
        """Make everything applied so far durable, with the source position to resume from."""
        ...

    def resume_position(self) -> dict[str, object] | None: ...

    def evict(self, now_ms: int) -> dict[str, int]:
        """Apply the retention policy; returns how many entries of each kind were dropped."""
        ...

    def close(self) -> None: ...

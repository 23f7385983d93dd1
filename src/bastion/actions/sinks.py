"""Where applied actions go: the results directory, an SQLite table, and a webhook.

The webhook never blocks the stream for long: actions are queued to a background thread that POSTs them in
batches, retried by :func:`bastion.retry.deliver` (exponential backoff with full jitter, ``Retry-After``
honoured, other 4xx never retried); when the queue is full or retries are exhausted the batch is dropped,
logged and counted (``dropped``/``failed``), and the stream goes on. Each delivery is signed
(:mod:`bastion.actions.signing`) when a secret is configured and carries a ``Bastion-Delivery`` id that a
retry repeats.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from bastion.actions.effects import AppliedAction
from bastion.actions.signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from bastion.retry import RetryPolicy, deliver

log = logging.getLogger("bastion.sinks")
_enc = msgspec.json.Encoder()


class ResultsWriter:
    """Streams actions.jsonl, shadow_actions.jsonl and dead_letters.jsonl into the results directory."""

    def __init__(self, out_dir: Path, append: bool = False, truncate_to: dict[str, int] | None = None) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        mode = "ab" if append else "wb"
        if append and truncate_to:
            for name, size in truncate_to.items():
                p = self.dir / name
                if p.exists() and p.stat().st_size > size:
                    with open(p, "r+b") as fh:
                        fh.truncate(size)
        self._actions = open(self.dir / "actions.jsonl", mode)  # noqa: SIM115
        self._shadow = open(self.dir / "shadow_actions.jsonl", mode)  # noqa: SIM115
        self._dead = open(self.dir / "dead_letters.jsonl", mode)  # noqa: SIM115
        self.dead_letters = 0

    def write_action(self, action: AppliedAction) -> None:
        fh = self._shadow if action.stage == "shadow" else self._actions
        fh.write(_enc.encode(action))
        fh.write(b"\n")

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        self.dead_letters += 1
        self._dead.write(_enc.encode({"line": line, "error": error, "input": raw[:2000]}))
        self._dead.write(b"\n")

    def flush(self) -> None:
        for fh in (self._actions, self._shadow, self._dead):
            fh.flush()

    def sizes(self) -> dict[str, int]:
        self.flush()
        return {name: (self.dir / name).stat().st_size
                for name in ("actions.jsonl", "shadow_actions.jsonl", "dead_letters.jsonl")}

    def close(self) -> None:
        for fh in (self._actions, self._shadow, self._dead):
            fh.close()


class SqliteSink:
    """Applied actions in an SQLite table ``actions`` (for investigation and the API)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS actions (id TEXT, ts TEXT, event_id TEXT, subject_kind TEXT, "
            "subject_id TEXT, action TEXT, source TEXT, stage TEXT, body TEXT)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS actions_subject ON actions(subject_kind, subject_id)")
        self._pending: list[tuple[Any, ...]] = []

    def write_action(self, action: AppliedAction) -> None:
        self._pending.append((action.id, action.ts, action.event_id, action.subject.kind, action.subject.id,
                              action.action, action.source, action.stage, _enc.encode(action).decode()))
        if len(self._pending) >= 1000:
            self.flush()

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def flush(self) -> None:
        if self._pending:
            with self.db:
                self.db.executemany("INSERT INTO actions VALUES (?,?,?,?,?,?,?,?,?)", self._pending)
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.db.close()


class WebhookSink:
    """POSTs batches of applied actions as JSON (``{"actions": [...]}``) to ``url`` from a background thread.

    ``secrets``: the signing secrets (the first is current; more while rotating); none sends unsigned."""

    def __init__(self, url: str, timeout_s: float = 2.0, max_retries: int = 4, batch: int = 100,
                 max_queue: int = 10_000, backoff_s: float = 0.25, client: Any = None,
                 secrets: Sequence[str] | str = (), max_time_s: float = 60.0, max_backoff_s: float = 30.0) -> None:
        import httpx

        self.url = url
        self.batch = batch
        self.policy = RetryPolicy(max_attempts=max_retries + 1, max_time_s=max_time_s, base_s=backoff_s,
                                  max_backoff_s=max_backoff_s)
        self.secrets = [k for k in ([secrets] if isinstance(secrets, str) else secrets) if k]
        self.client = client or httpx.Client(timeout=timeout_s)
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_queue)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.retries = 0
        self._thread = threading.Thread(target=self._run, name="bastion-webhook", daemon=True)
        self._thread.start()

    def write_action(self, action: AppliedAction) -> None:
        if action.stage == "shadow":
            return
        try:
            self.queue.put_nowait(_enc.encode(action))
        except queue.Full:
            self.dropped += 1

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def headers(self, body: bytes, delivery_id: str) -> dict[str, str]:
        h = {"content-type": "application/json", "user-agent": "bastion-webhook/1", DELIVERY_HEADER: delivery_id}
        if self.secrets:
            h[SIGNATURE_HEADER] = sign(self.secrets, body)
        return h

    def _count_retry(self, _state: Any) -> None:
        self.retries += 1

    def _post(self, items: list[bytes]) -> None:
        body = b'{"actions":[' + b",".join(items) + b"]}"
        delivery_id = uuid.uuid4().hex
        out = deliver(self.client, self.url, body, lambda: self.headers(body, delivery_id), self.policy,
                      on_retry=self._count_retry)
        if out.ok:
            self.sent += len(items)
        else:
            self.failed += len(items)
            log.warning("webhook %s: dropped a batch of %d (delivery %s) after %d attempt(s): %s", self.url,
                        len(items), delivery_id, out.attempts, out.error)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            items = [item]
            while len(items) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._post(items)
                    return
                items.append(nxt)
            self._post(items)

    def flush(self) -> None:
        return None

    def close(self, timeout_s: float = 10.0) -> None:
        self.queue.put(None)
        self._thread.join(timeout_s)

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from bastion.actions.effects import AppliedAction, Subject
from bastion.actions.sinks import ResultsWriter, SqliteSink, WebhookSink


def action(i: int, stage: str = "enforce") -> AppliedAction:
    return AppliedAction(id=f"a{i}", ts="2026-11-20T09:00:00.000Z", event_id=f"e{i}", subject=Subject("account", "u1"),
                         action="label.add", source="rule:T", label="spam", stage=stage)


class FlakyServer:
    """A real HTTP server on 127.0.0.1 that fails the first ``failures`` requests with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_webhook_retries_with_backoff_then_delivers():
    srv = FlakyServer(failures=2)
    sink = WebhookSink(srv.url, backoff_s=0.01)
    for i in range(5):
        sink.write_action(action(i))
    sink.write_action(action(99, stage="shadow"))  # shadow effects are never sent
    sink.close()
    srv.close()
    ids = [a["id"] for batch in srv.received for a in batch["actions"]]
    assert ids == [f"a{i}" for i in range(5)]
    assert sink.retries == 2 and sink.failed == 0 and sink.sent == 5


def test_dead_webhook_never_blocks_the_stream():
    sink = WebhookSink("http://127.0.0.1:9/nothing-listens-here", timeout_s=0.2, max_retries=1, backoff_s=0.01,
                       max_queue=10)
    t0 = time.perf_counter()
    for i in range(1000):
        sink.write_action(action(i))
    assert time.perf_counter() - t0 < 1.0  # enqueueing is non-blocking; the overflow is dropped and counted
    sink.close(timeout_s=5)
    assert sink.dropped > 0 and sink.failed > 0 and sink.sent == 0


def test_results_writer_and_sqlite_sink(tmp_path: Path):
    w = ResultsWriter(tmp_path / "r")
    w.write_action(action(1))
    w.write_action(action(2, stage="shadow"))
    w.write_dead_letter(7, "invalid JSON", "{oops")
    w.close()
    assert json.loads((tmp_path / "r" / "actions.jsonl").read_text())["id"] == "a1"
    assert json.loads((tmp_path / "r" / "shadow_actions.jsonl").read_text())["stage"] == "shadow"
    assert json.loads((tmp_path / "r" / "dead_letters.jsonl").read_text()) == {"line": 7, "error": "invalid JSON",
                                                                               "input": "{oops"}
    s = SqliteSink(tmp_path / "a.db")
    s.write_action(action(3))
    s.flush()
    assert s.db.execute("SELECT action, subject_id FROM actions").fetchall() == [("label.add", "u1")]
    s.close()

"""Signed webhook deliveries and the shared retry policy, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import tenacity

from bastion.actions.effects import AppliedAction, Subject
from bastion.actions.signing import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, sign, verify
from bastion.actions.sinks import WebhookSink
from bastion.retry import Backoff, RetryPolicy, deliver, retry_after_s

SECRET = "whsec_" + "k" * 32   # a test-only secret, made up here


def action(i: int) -> AppliedAction:
    return AppliedAction(id=f"a{i}", ts="2026-11-21T09:00:00.000Z", event_id=f"e{i}", subject=Subject("account", "u1"),
                         action="label.add", source="rule:T", label="spam")


class Receiver:
    """A real HTTP server answering from a script of (status, headers) per request, then 200."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] = ()) -> None:
        self.script = list(script)
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append((time.monotonic(), dict(self.headers), body))
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(script=()):
        made.append(Receiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_each_delivery_is_signed_and_a_receiver_verifies_it(receiver):
    srv = receiver()
    sink = WebhookSink(srv.url, secrets=SECRET)
    for i in range(3):
        sink.write_action(action(i))
    sink.close()
    assert sink.sent == 3 and srv.requests
    for _t, headers, body in srv.requests:
        ts = verify(SECRET, headers[SIGNATURE_HEADER], body, tolerance_s=300)
        assert abs(ts - time.time()) < 60
        assert len(headers[DELIVERY_HEADER]) == 32
        assert [a["id"] for a in json.loads(body)["actions"]][0] == "a0"
        tampered = body.replace(b'"a0"', b'"a9"')
        with pytest.raises(SignatureError, match="no v1 signature matches"):
            verify(SECRET, headers[SIGNATURE_HEADER], tampered)
        with pytest.raises(SignatureError, match="no v1 signature matches"):
            verify("another-secret", headers[SIGNATURE_HEADER], body)
        # the same delivery replayed ten minutes later is refused
        with pytest.raises(SignatureError, match="outside the 300s tolerance"):
            verify(SECRET, headers[SIGNATURE_HEADER], body, now=ts + 600)


def test_old_and_malformed_signatures_are_refused():
    body = b'{"actions":[]}'
    old = sign(SECRET, body, timestamp=int(time.time()) - 3600)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, old, body)
    assert verify(SECRET, old, body, tolerance_s=7200) > 0
    for bad in (None, "", "v1=abc", "t=12,", "t=abc,v1=00", "t=1795132800"):
        with pytest.raises(SignatureError):
            verify(SECRET, bad, body)
    # while a secret is rotated both the old and the new one verify
    both = sign(["new-secret", SECRET], body)
    assert verify(SECRET, both, body) and verify("new-secret", both, body)


def test_retry_after_seconds_is_honoured_with_the_same_delivery_id(receiver):
    srv = receiver([(429, {"Retry-After": "1"})])
    sink = WebhookSink(srv.url, secrets=SECRET, backoff_s=0.01)
    t0 = time.monotonic()
    sink.write_action(action(1))
    sink.close()
    assert len(srv.requests) == 2 and sink.retries == 1 and sink.sent == 1 and sink.failed == 0
    gap = srv.requests[1][0] - srv.requests[0][0]
    assert 0.95 <= gap < 3.0, gap           # waited the server's second, not the 0.01 s backoff
    assert time.monotonic() - t0 >= 0.95
    ids = {h[DELIVERY_HEADER] for _t, h, _b in srv.requests}
    assert len(ids) == 1                     # a retry is the same delivery (receivers drop repeats by it)
    for _t, h, b in srv.requests:            # each attempt is signed afresh
        verify(SECRET, h[SIGNATURE_HEADER], b)


def test_retry_after_http_date_on_503(receiver):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    srv = receiver([(503, {"Retry-After": when})])
    with httpx.Client(timeout=2) as client:
        out = deliver(client, srv.url, b"{}", {"content-type": "application/json"},
                      RetryPolicy(max_attempts=3, base_s=0.01))
    assert out.ok and out.attempts == 2
    gap = srv.requests[1][0] - srv.requests[0][0]
    assert 0.9 <= gap < 3.5, gap             # HTTP-dates have whole seconds: between 1 and 2 s from now


def test_400_is_never_retried_and_408_is(receiver):
    srv = receiver([(400, {})])
    sink = WebhookSink(srv.url, secrets=SECRET, backoff_s=0.01)
    sink.write_action(action(1))
    sink.close()
    assert len(srv.requests) == 1 and sink.retries == 0 and sink.failed == 1 and sink.sent == 0
    srv2 = receiver([(408, {}), (404, {})])
    with httpx.Client(timeout=2) as client:
        out = deliver(client, srv2.url, b"{}", {}, RetryPolicy(max_attempts=5, base_s=0.01))
    assert len(srv2.requests) == 2 and not out.ok and out.response.status_code == 404
    assert out.error == "refused: HTTP 404"


def test_attempts_and_time_budget_bound_the_retries(receiver):
    srv = receiver([(503, {})] * 10)
    with httpx.Client(timeout=2) as client:
        out = deliver(client, srv.url, b"{}", {}, RetryPolicy(max_attempts=3, base_s=0.01))
    assert not out.ok and out.attempts == 3 and len(srv.requests) == 3
    assert out.error == "gave up after HTTP 503"
    # a Retry-After that would cross the time budget is not waited for
    srv2 = receiver([(429, {"Retry-After": "30"})] * 3)
    t0 = time.monotonic()
    with httpx.Client(timeout=2) as client:
        out = deliver(client, srv2.url, b"{}", {}, RetryPolicy(max_attempts=5, max_time_s=5.0))
    assert not out.ok and len(srv2.requests) == 1 and time.monotonic() - t0 < 2.0


def test_full_jitter_backoff_and_streaks():
    policy = RetryPolicy(max_attempts=4, max_time_s=None, base_s=1.0, max_backoff_s=3.0)
    waits = []
    for _ in range(200):
        b = Backoff(policy)
        waits.append([b.failed(OSError("x")) for _ in range(3)])
    for k, cap in enumerate((1.0, 2.0, 3.0)):
        col = [w[k] for w in waits]
        assert min(col) >= 0 and max(col) <= cap
        assert min(col) < 0.25 * cap and max(col) > 0.75 * cap   # full jitter spreads over [0, cap]
    b = Backoff(policy)
    for _ in range(3):
        b.failed(OSError("x"))
    with pytest.raises(tenacity.RetryError):
        b.failed(OSError("x"))               # the fourth failure in a row: attempts spent
    b.succeeded()
    assert b.failed(OSError("x")) <= 1.0     # progress starts a new streak
    permanent = Backoff(policy, retry_on=lambda exc: isinstance(exc, OSError))
    with pytest.raises(KeyError):
        permanent.failed(KeyError("not transient"))


def test_retry_after_parsing():
    now = time.time()
    assert retry_after_s("120") == 120.0
    assert retry_after_s(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after_s(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after_s("-5") is None and retry_after_s("later") is None and retry_after_s(None) is None

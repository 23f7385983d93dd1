"""The Slack-compatible notifier, against a real HTTP server on 127.0.0.1 capturing the posts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bastion.actions.effects import AppliedAction, Subject
from bastion.actions.notify import SlackNotifier
from bastion.app import build_runtime
from bastion.events.codec import decode_event
from bastion.retry import RetryPolicy
from bastion.settings import Settings, SettingsError

T0 = 1_795_132_800_000


class Channel:
    """A real HTTP server standing in for a Slack incoming webhook: keeps each JSON post, answers ``ok``
    (or the scripted statuses first)."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] = ()) -> None:
        self.posts: list[dict] = []
        self.times: list[float] = []
        self.hits = 0
        self.script = list(script)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.hits += 1
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                if status == 200:
                    assert self.headers["content-type"] == "application/json"
                    outer.posts.append(json.loads(body))
                    outer.times.append(time.monotonic())
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def channel():
    made: list[Channel] = []

    def make(script=()):
        made.append(Channel(script))
        return made[-1]

    yield make
    for c in made:
        c.close()


def case(i: int, priority: float, stage: str = "enforce", **kw) -> AppliedAction:
    return AppliedAction(id=f"a{i}", ts="2026-11-21T09:00:00.000Z", event_id=f"e{i}",
                         subject=Subject("account", f"u{i}"), action="review.enqueue", source="rule:HateSpeech",
                         queue="hate", priority=priority, stage=stage, reason="hate model 0.97 <@U123>", **kw)


def test_high_priority_cases_are_posted_low_ones_are_not(channel):
    ch = channel()
    n = SlackNotifier(ch.url, min_priority=0.7, batch_s=0.1)
    n.write_action(case(1, 0.9))
    n.write_action(case(2, 0.5))
    n.write_action(case(3, 0.95, stage="shadow"))   # shadow rules never notify
    n.close()
    assert len(ch.posts) == 1 and n.messages == 1
    msg = ch.posts[0]
    assert msg["text"].startswith("Bastion: 1 high-priority review case")
    assert "`u1`" in msg["text"] and "`u2`" not in msg["text"] and "`u3`" not in msg["text"]
    assert msg["blocks"][0]["type"] == "header"
    section = msg["blocks"][1]["text"]["text"]
    assert "*hate*" in section and "priority 0.90" in section
    assert "&lt;@U123&gt;" in section and "<@U123>" not in section   # event text cannot ping the channel


def test_a_burst_is_batched_and_rate_limited(channel):
    ch = channel()
    n = SlackNotifier(ch.url, min_priority=0.7, batch_s=0.2, max_per_minute=2)
    t_end = time.monotonic() + 1.5
    i = 0
    while time.monotonic() < t_end:     # a burst of cases for 1.5 s, over several batch windows
        n.write_action(case(i, 0.8 + (i % 10) / 100))
        i += 1
        time.sleep(0.005)
    time.sleep(0.3)
    during = len(ch.posts)
    n.close()
    assert during == 2                   # two a minute at most, however many windows passed
    assert len(ch.posts) == 3            # and what was held back goes out in one message at close
    counted = 0
    for msg in ch.posts:
        counted += int(msg["text"].split(": ")[1].split(" ")[0])
        assert len(msg["blocks"]) <= 12
    assert counted == i == n.notices
    last = ch.posts[-1]
    assert last["blocks"][-1]["type"] == "context" and "more" in last["blocks"][-1]["elements"][0]["text"]
    # the most urgent cases are listed first
    assert "priority 0.89" in last["blocks"][1]["text"]["text"]


def test_notifier_retries_with_retry_after(channel):
    ch = channel([(429, {"Retry-After": "1"}), (500, {})])
    n = SlackNotifier(ch.url, batch_s=0.05, policy=RetryPolicy(max_attempts=4, base_s=0.01))
    t0 = time.monotonic()
    n.write_action(case(1, 0.99))
    time.sleep(0.1)
    n.close()
    assert ch.hits == 3 and len(ch.posts) == 1 and n.messages == 1 and n.failed == 0
    assert ch.times[0] - t0 >= 1.0


def _post(i: int, actor: str, text: str) -> bytes:
    return json.dumps({"id": f"e{i}", "type": "post.create", "ts": T0 + i * 1000, "actor": actor,
                       "post": {"id": f"p{i}", "text": text}}).encode()


def test_engine_posts_quota_trips_and_urgent_cases(channel, tmp_path: Path):
    """The whole path: settings -> runtime -> rules -> quotas -> the notifier -> the channel."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("""rules:
  - name: BuyNow
    description: a test rule that suspends spam authors and sends them to review
    owner: test
    events: [post.create]
    stage: enforce
    when: matches(event.text, "buy now")
    effects:
      - {suspend: actor}
      - {review: spam, priority: 0.9}
""")
    ch = channel()
    settings = Settings.load(env={}, slack_webhook_url=ch.url, slack_batch_s=0.1, quotas={"account.suspend": 3},
                             db_path=tmp_path / "b.db")
    rt = build_runtime(settings, rules_dir=rules, models=False, clusters_on=False)
    for i in range(10):
        rt.engine.process(decode_event(_post(i, f"spammer{i}", "buy now cheap pills")))
    rt.close()
    text = "\n".join(p["text"] for p in ch.posts)
    assert "quota for `account.suspend` (3/hour) exhausted" in text
    assert text.count("quota for") == 1                 # one notice per trip, not one per suppressed effect
    assert sum(int(p["text"].split(": ")[1].split(" ")[0]) for p in ch.posts if "review case" in p["text"]) == 10
    assert "spammer3" in text                           # the first suspension past the quota


def test_settings_for_outputs(tmp_path: Path):
    s = Settings.load(env={"BASTION_SLACK_WEBHOOK_URL": "http://127.0.0.1:1/x", "BASTION_SLACK_MIN_PRIORITY": "0.5",
                           "BASTION_WEBHOOK_SECRET": "a,b"})
    assert s.slack_webhook_url == "http://127.0.0.1:1/x" and s.slack_min_priority == 0.5
    with pytest.raises(SettingsError, match="BASTION_WEBHOOK_SECRET must be set in production"):
        Settings.load(env={"BASTION_ENVIRONMENT": "production", "BASTION_SECRET_KEY": "x" * 40,
                           "BASTION_WEBHOOK_URL": "https://hooks.example/bastion"})

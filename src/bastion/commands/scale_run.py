"""The work behind `bastion worker` and `bastion produce` (kept out of the argument parsing)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("bastion.worker")


def run_worker(source: str, state: str | None, index: int, workers: int, batch: int, max_skew_ms: int,
               http_port: int, exit_when_drained: bool, rules: Path | None, config: Path | None,
               latency_out: Path | None = None) -> None:
    from bastion.app import build_runtime, build_state
    from bastion.observability import setup_logging
    from bastion.settings import Settings
    from bastion.worker import HealthServer, Worker

    settings = Settings.load(config)
    setup_logging(settings.log_json)
    name = f"w{index}"
    scratch: Path | None = None
    if not settings.review_db and settings.db_path == Settings().db_path:
        # a worker's local review database is scratch (cases live in PostgreSQL in a deployment): one per
        # process, not the working directory's shared file N workers would lock each other out of
        import tempfile
        from dataclasses import replace

        scratch = Path(tempfile.mkdtemp(prefix=f"bastion-worker-{name}-"))
        settings = replace(settings, db_path=scratch / "review.db")
    state_url = state or (source if source.startswith("redis") else settings.redis_url)
    if not state_url:
        raise SystemExit("--state redis://... is required with a Kafka source")
    st = build_state(state_url, worker=name)
    from bastion.sources.kafka import KafkaConfigError

    try:
        rt = build_runtime(settings, "worker", rules_dir=rules, state=st, resume=True, worker_name=name)
    except KafkaConfigError as exc:   # the actions topic's client settings
        raise SystemExit(f"error: {exc}") from None
    if source.startswith("kafka://"):
        from bastion.sources.kafka import KafkaSource, client_properties

        try:
            src = KafkaSource(source, consumer=name, config=client_properties(settings))
        except KafkaConfigError as exc:
            raise SystemExit(f"error: {exc}") from None
    else:
        from bastion.sources.redis_streams import StreamSource, connect

        client, prefix = connect(source)
        src = StreamSource(client, prefix, index=index, workers=workers, consumer=name)
    metrics = rt.metrics
    assert metrics is not None   # the worker profile's
    w = Worker(rt, src, name=name, index=index, workers=workers, batch_size=batch, max_skew_ms=max_skew_ms,
               exit_when_drained=exit_when_drained)
    w.keep_latencies = latency_out is not None
    w.install_signals()
    health = HealthServer(w, metrics, port=http_port).start() if http_port else None
    log.info("worker %s of %d consuming %s", name, workers, source, extra={"worker": name})
    try:
        result = w.run()
    finally:
        if health is not None:
            health.close()
        src.close()
        for out in w.outputs:   # the Kafka actions topic: what is queued is delivered before exit
            out.close()
    if latency_out is not None:
        import json

        latency_out.write_text(json.dumps(w.latencies))
    log.info("worker stopped: %s", result, extra={"worker": name})
    if scratch is not None:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def run_produce(events: Path, to: str, partitions: int, rate: float | None, end: bool,
                config: Path | None = None) -> int:
    from bastion.sources.files import read_lines

    lines = (line for _n, line in read_lines(events))
    if to.startswith("kafka://"):
        from bastion.settings import Settings
        from bastion.sources.kafka import KafkaConfigError, KafkaProducer, client_properties

        try:
            kp = KafkaProducer(to, partitions, config=client_properties(Settings.load(config)))
        except KafkaConfigError as exc:
            raise SystemExit(f"error: {exc}") from None
        n = kp.produce(lines, rate=rate)
        kp.end()
        return n
    from bastion.sources.redis_streams import StreamProducer, connect

    client, prefix = connect(to)
    prod = StreamProducer(client, prefix, partitions)
    n = prod.produce(lines, rate=rate)
    if end:
        prod.end()
    return n

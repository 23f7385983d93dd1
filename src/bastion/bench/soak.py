"""Soak run: one stream worker under a steady produced load for ``--minutes``, recording its RSS over time.

``python -m bastion.bench.soak --minutes 20 --rate 300 --redis redis://127.0.0.1:6379/0`` simulates a stream
(``bastion sim``), produces it into Redis Streams at a steady rate (looping over the file with fresh event ids
and shifted timestamps, so state keeps growing like a live platform's and retention has to hold it), runs one
``bastion worker`` process and samples its resident memory every few seconds. Memory that does not grow is the
pass criterion: the last third's median RSS within 10% of the second third's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def looped_events(path: Path, rounds: int):
    lines = path.read_bytes().splitlines()
    first = msgspec.json.decode(lines[0])["ts"]
    last = msgspec.json.decode(lines[-1])["ts"]
    span = last - first + 1000
    for k in range(rounds):
        for line in lines:
            if k == 0:
                yield line
                continue
            obj = msgspec.json.decode(line)
            obj["id"] = f"{obj['id']}~{k}"
            obj["ts"] = obj["ts"] + k * span
            post = obj.get("post")
            if isinstance(post, dict):   # fresh post ids too, so the post store must evict
                for f in ("id", "reply_to", "root", "quote_of"):
                    if post.get(f):
                        post[f] = f"{post[f]}~{k}"
            yield msgspec.json.encode(obj)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=300.0, help="events per second")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--out", type=Path, default=None, help="write the samples and summary here (JSON)")
    args = ap.parse_args(argv)
    from bastion.sim.engine import SimConfig, simulate
    from bastion.sources.redis_streams import StreamProducer, connect
    from bastion.state.redis import RedisState

    work = Path(tempfile.mkdtemp(prefix="bastion-soak-"))
    simulate(SimConfig(users=args.users, days=1, seed=11), work / "sim")
    url = f"{args.redis}?prefix=bastion-soak:{int(time.time())}:"
    client, prefix = connect(url)
    RedisState(client, prefix).drop_all()
    producer = StreamProducer(client, prefix, partitions=4)
    total = int(args.minutes * 60 * args.rate)
    rounds = total // (work / "sim" / "events.jsonl").read_bytes().count(b"\n") + 1
    stop = threading.Event()

    def produce() -> None:
        gen = looped_events(work / "sim" / "events.jsonl", rounds)
        chunk, t0, n = 500, time.perf_counter(), 0
        while not stop.is_set() and n < total:
            batch = [line for _, line in zip(range(chunk), gen, strict=False)]
            if not batch:
                break
            producer.produce(batch, chunk=len(batch))
            n += len(batch)
            ahead = n / args.rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
        producer.end()

    worker = subprocess.Popen([sys.executable, "-m", "bastion.cli", "worker", "--source", url, "--http-port", "0",
                               "--exit-when-drained"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    th = threading.Thread(target=produce, daemon=True)
    th.start()
    samples: list[tuple[float, float, int]] = []
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60 + 600
    while worker.poll() is None and time.monotonic() < deadline:
        samples.append((round(time.monotonic() - t0, 1), round(rss_mb(worker.pid), 1), producer.backlog()))
        time.sleep(args.every)
    stop.set()
    if worker.poll() is None:
        worker.terminate()
        worker.wait(60)
    th.join(10)
    rss = [s[1] for s in samples if s[1] > 0]
    third = max(1, len(rss) // 3)
    mid, last = statistics.median(rss[third:2 * third] or rss), statistics.median(rss[2 * third:] or rss)
    result = {"minutes": args.minutes, "rate_per_s": args.rate, "events": total,
              "wall_s": round(time.monotonic() - t0, 1), "rss_mb_first": rss[0] if rss else None,
              "rss_mb_median_second_third": mid, "rss_mb_median_last_third": last, "rss_mb_max": max(rss or [0]),
              "max_backlog": max((s[2] for s in samples), default=0),
              "growth_last_vs_second_third": round(last / mid - 1, 4) if mid else None,
              "pass": bool(mid) and last <= mid * 1.10, "samples": samples}
    RedisState(client, prefix).drop_all()
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    return result


if __name__ == "__main__":
    main()

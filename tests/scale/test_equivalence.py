"""The same simulated stream through the embedded engine and through N = 1 and N = 3 stream workers on
Redis Streams gives the same actions (sorted by event id, action ids aside) and the same scores."""

from __future__ import annotations

import pytest
from tests.scale.conftest import (
    collect,
    embedded_run,
    normalised_actions,
    produce,
    scores,
    start_worker,
    url,
    wait_all,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded(sim_events, tmp_path_factory):
    return embedded_run(sim_events, tmp_path_factory.mktemp("embedded"))


@pytest.mark.parametrize("workers", [1, 3])
def test_n_workers_equal_the_embedded_engine(workers, sim_events, embedded, redis_prefix, tmp_path):
    src = url(redis_prefix)
    produce(sim_events, src, partitions=6)
    procs = [start_worker(src, i, workers, log=tmp_path / f"w{i}.log") for i in range(workers)]
    wait_all(procs, timeout=1800)
    out = collect(src, tmp_path / "out")
    want = normalised_actions(embedded / "actions.jsonl")
    got = normalised_actions(out / "actions.jsonl")
    assert len(want) > 0
    assert got == want
    assert scores(out / "scores.jsonl") == scores(embedded / "scores.jsonl")

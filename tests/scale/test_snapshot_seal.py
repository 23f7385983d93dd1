"""Replica snapshots are pickles, so they are sealed (HMAC under the deployment's key) and read back with an
unpickler that accepts only what a snapshot holds."""

from __future__ import annotations

import os
import pickle
from collections import deque

import numpy as np
import pytest


def test_a_snapshot_round_trips_sealed_and_a_tampered_or_foreign_one_is_refused():
    from bastion.detect.clusters.common import UnionFind
    from bastion.replica import SnapshotError, loads_snapshot, seal, unseal

    uf = UnionFind()
    uf.union("a", "b")
    obj = (["x"], [uf], {"d": deque([1, 2]), "v": np.arange(5, dtype=np.float32), "s": {1, 2}})
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    key = os.urandom(32)
    blob = seal(payload, key)
    names, dets, rest = loads_snapshot(unseal(blob, key))
    assert names == ["x"] and dets[0].find("a") == dets[0].find("b") and list(rest["d"]) == [1, 2]
    assert rest["v"].tolist() == [0, 1, 2, 3, 4] and rest["s"] == {1, 2}
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SnapshotError, match="seal does not match"):
        unseal(tampered, key)
    with pytest.raises(SnapshotError, match="seal does not match"):
        unseal(blob, os.urandom(32))
    with pytest.raises(SnapshotError, match="seal does not match"):
        unseal(payload, key)                       # an unsealed pickle


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_the_snapshot_unpickler_refuses_functions_and_dunder_walks():
    from bastion.replica import SnapshotError, loads_snapshot

    with pytest.raises(SnapshotError, match="posix.system|os.system"):
        loads_snapshot(pickle.dumps(_Boom()))
    # a function of an allowed module is not a class: refused too
    from bastion.detect.clusters import common

    fn = next(v for v in vars(common).values() if callable(v) and not isinstance(v, type)
              and getattr(v, "__module__", "") == common.__name__)
    with pytest.raises(SnapshotError, match="never holds"):
        loads_snapshot(pickle.dumps(fn))
    # getattr is allowed only for plain attributes of allowed classes (datasketch's LSH keeps a bound method)
    from bastion.detect.clusters.common import UnionFind

    class _Walk:
        def __reduce__(self):
            return (getattr, (UnionFind(), "__class__"))

    with pytest.raises(SnapshotError, match="asks for"):
        loads_snapshot(pickle.dumps(_Walk()))

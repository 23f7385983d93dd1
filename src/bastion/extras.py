"""Optional dependencies. Heavy or GPL-licensed packages live behind extras of the ``bastion`` distribution
(``pip install 'bastion[report]'``); code that needs one imports it through :func:`require`, so a missing one
is a one-line error naming the extra, never a traceback.

>>> require("json", "report", "a test").__name__
'json'
>>> try:
...     require("no_such_module_here", "report", "the HTML report")
... except MissingExtra as exc:
...     print(exc)
the HTML report needs the optional package no_such_module_here: pip install 'bastion[report]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

# extra -> what it holds (docs and error messages)
EXTRAS = {
    "report": "matplotlib: the plots of the HTML evaluation report and `bastion sim --plots`",
    "leiden": "igraph and leidenalg (GPL): Leiden communities instead of networkx's Louvain",
    "bench": "usearch, pydantic, threadpoolctl, alt-profanity-check: the comparisons of `bastion bench`",
    "embed": "torch, transformers, safetensors: the embedding and fine-tuned text tiers",
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise MissingExtra(f"{what} needs the optional package {top}: pip install 'bastion[{extra}]'") from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False

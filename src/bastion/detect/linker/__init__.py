"""Repeat offenders: link new accounts to suspended ones, early, with evidence (issue 7).

>>> from bastion.detect.linker import build_linker
>>> build_linker().name
'linker'
"""

from __future__ import annotations

from typing import Any

from bastion.detect.linker.detector import Linker, offender_history


def build_linker(**options: Any) -> Linker:
    """The linker detector with the shipped pair model; pass it to ``build_runtime(extra_detectors=[...])``."""
    return Linker(**options)


__all__ = ["Linker", "build_linker", "offender_history"]

"""The rule language and its runtime.

Load the default pack into the engine::

    from bastion.features.builtin import build_registry
    from bastion.rules import RulesDetector
    registry = build_registry()            # plus model features, registered before the rules load
    rules = RulesDetector.from_dir("rules", registry)
    engine = Engine(state, registry, [rules, ...])
    rules.reload()                          # hot reload; RulesWatcher(rules).start() polls the directory

Heavy pieces (fixtures, backtest) import lazily.
"""

from __future__ import annotations

from bastion.rules.errors import RuleError, RuleSetError
from bastion.rules.loader import RuleSet, load_rules
from bastion.rules.runtime import RulesDetector

__all__ = ["RuleError", "RuleSetError", "RuleSet", "RulesDetector", "load_rules"]

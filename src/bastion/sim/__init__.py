"""The platform simulator: a benign population, adversary cohorts and look-alikes, with exact ground truth.

>>> from bastion.sim import SimConfig
>>> SimConfig(users=100).cohort_size("spam_bot")
2
"""

from bastion.sim.engine import DEFAULT_COHORTS, SimConfig, simulate

__all__ = ["DEFAULT_COHORTS", "SimConfig", "simulate"]

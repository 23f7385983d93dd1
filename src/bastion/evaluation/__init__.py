"""Scoring results directories against simulator ground truth (``bastion eval``)."""

from bastion.evaluation.metrics import evaluate, pr_summary, print_scoreboard

__all__ = ["evaluate", "pr_summary", "print_scoreboard"]

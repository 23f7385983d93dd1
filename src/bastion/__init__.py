"""Bastion: a real-time trust-and-safety platform for social networks."""

__version__ = "0.1.0"

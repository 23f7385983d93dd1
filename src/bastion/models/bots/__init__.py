"""Bot detection (issue 6): dataset adapters into canonical state, calibrated LightGBM models, a
Botometer-ESC-style specialist ensemble, the live :class:`BotDetector`, and the real-data evaluation.

Live use::

    from bastion.models.bots import BotDetector
    detector = BotDetector.load(registry)          # bot_profile (+ bot_activity when present)
    prob, top = detector.score(account, now_ms)    # top: [(feature, log-odds contribution), ...]
"""

from bastion.models.bots.detector import BotDetector, load_bot_model
from bastion.models.bots.model import BotModel, SpecialistEnsemble

__all__ = ["BotDetector", "BotModel", "SpecialistEnsemble", "load_bot_model"]

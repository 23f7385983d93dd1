"""Bot detection (issue 6): dataset adapters into canonical state, calibrated LightGBM models, a
Botometer-ESC-style specialist ensemble, the live :class:`BotDetector`, and the real-data evaluation.

Live use::

    from bastion.models.bots import BotDetector
    detector = BotDetector.load(registry)          # bot_profile (+ bot_activity, bot_behaviour when present)
    prob, top = detector.score(account, now_ms)    # top: [(feature, log-odds contribution), ...]
    prob, top = detector.score(account, now_ms, state)  # + the behaviour model (graph features need state)
"""

from bastion.models.bots.detector import BotDetector, load_bot_model
from bastion.models.bots.model import BotModel, SpecialistEnsemble

__all__ = ["BotDetector", "BotModel", "SpecialistEnsemble", "load_bot_model"]

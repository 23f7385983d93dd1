"""Seeded obfuscation of texts (leetspeak, spacing, homoglyphs, zero-width characters, emoji) for the
robustness evaluation: the offensive test set perturbed this way should lose little macro-F1.

>>> perturb("you are a stupid idiot", seed=3) == perturb("you are a stupid idiot", seed=3)
True
>>> perturb("you are a stupid idiot", seed=3) != "you are a stupid idiot"
True
"""

from __future__ import annotations

import random

_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "l": "1"}
_HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і", "s": "ѕ", "k": "к"}
_EMOJI = ["😂", "🤬", "👍", "🙄", "💩", "🔥", "😡", "🖕", "🇺🇸", "❤️"]
OBFUSCATIONS = ("leet", "spacing", "homoglyph", "zero_width", "emoji_inside", "repeat")


def _obfuscate(word: str, how: str, rng: random.Random) -> str:
    if how == "leet":
        return "".join(_LEET.get(c.lower(), c) if rng.random() < 0.7 else c for c in word)
    if how == "spacing":
        return rng.choice([" ", ".", "-"]).join(word)
    if how == "homoglyph":
        return "".join(_HOMO.get(c, c) if rng.random() < 0.7 else c for c in word)
    if how == "zero_width":
        return "\u200b".join(word)
    if how == "emoji_inside":
        k = rng.randrange(1, len(word))
        return word[:k] + rng.choice(_EMOJI) + word[k:]
    if how == "repeat":
        k = rng.randrange(len(word))
        return word[:k] + word[k] * rng.randint(3, 6) + word[k + 1:]
    raise ValueError(how)


def perturb(text: str, seed: int = 0, word_rate: float = 0.3, emoji_rate: float = 0.5) -> str:
    """Obfuscate about ``word_rate`` of the alphabetic words (four letters or more) with one randomly chosen
    trick each, and append an emoji with probability ``emoji_rate``. Mentions, hashtags and links stay."""
    rng = random.Random(f"{seed}:{text}")
    words = text.split(" ")
    out = []
    for w in words:
        if len(w) >= 4 and w.isalpha() and rng.random() < word_rate:
            w = _obfuscate(w, rng.choice(OBFUSCATIONS), rng)
        out.append(w)
    result = " ".join(out)
    if rng.random() < emoji_rate:
        result += " " + rng.choice(_EMOJI)
    return result

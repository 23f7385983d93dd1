"""Synthetic identity and template text: handles, bios, near-duplicate spam and paraphrased campaign narratives.

Real message text comes from :mod:`bastion.sim.data`; this module only makes the parts no dataset holds (profile
fields, templated variations, narrative paraphrases) from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
import re

FIRST = ["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david", "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "chris", "karen", "daniel", "lisa", "matt", "nancy", "tony", "betty", "mark", "sandra", "paul", "ashley", "steven", "kim", "andrew", "emily", "josh", "donna", "ken", "michelle", "kevin", "carol", "brian", "amanda", "george", "melissa", "tim", "deborah", "ryan", "laura", "jacob", "rebecca", "gary", "sharon", "nick", "cynthia", "eric", "kathleen", "jon", "amy", "stephen", "angela", "larry", "anna", "frank", "ruth", "scott", "brenda", "sam", "pamela", "ali", "fatima", "wei", "mei", "raj", "priya", "luca", "giulia", "jonas", "lea", "omar", "aisha", "ivan", "olga", "diego", "lucia", "kenji", "yuki", "kofi", "ama"]
LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera", "campbell", "mitchell", "carter", "roberts", "khan", "patel", "singh", "chen", "wang", "kim", "park", "rossi", "muller", "schmidt", "novak", "ivanova", "okafor", "mensah", "tanaka", "sato", "silva", "santos", "costa", "pereira"]
INTERESTS = ["cyclist", "baker", "runner", "gamer", "reader", "photographer", "nurse", "teacher", "engineer", "coffee-lover", "dog-person", "cat-person", "gardener", "musician", "film-buff", "foodie", "hiker", "climber", "student", "dad", "mom", "traveller", "designer", "developer", "chess-player", "birder", "swimmer", "painter", "writer", "podcaster", "knitter"]
TOPICS = ["football", "basketball", "cricket", "tennis", "f1", "music", "kpop", "hiphop", "indie", "movies", "tv", "anime", "gaming", "esports", "tech", "ai", "crypto", "science", "space", "books", "poetry", "art", "photography", "food", "cooking", "travel", "fashion", "beauty", "fitness", "running", "cycling", "politics", "news", "climate", "health", "parenting", "pets", "dogs", "cats", "gardening", "cars", "history", "memes", "comedy", "jobs", "startups", "finance", "education", "design", "architecture", "theatre", "jazz", "metal", "wrestling", "golf", "baseball", "hockey", "rugby"]
SPAM_DOMAINS = ["win-prize.top", "free-gift.click", "cheap-meds.shop", "crypto-doubler.io", "bit-lnk.xyz", "promo-deal.biz", "getfollowers.fast", "lucky-spin.win"]
SHORTENERS = ("bit.ly", "tinyurl.com", "t.co", "ow.ly", "is.gd", "cutt.ly")
BRAND_WORDS = ("daily", "news", "times", "store", "official", "hq", "live", "media", "post", "wire")

_SUBS = {
    "free": ("FREE", "Free", "fr3e", "free!!"),
    "win": ("WIN", "w1n", "claim", "get"),
    "prize": ("reward", "gift", "PRIZE", "bonus"),
    "call": ("CALL", "ring", "txt", "text"),
    "now": ("NOW", "today", "asap", "now!"),
    "click": ("tap", "CLICK", "visit", "go to"),
    "cash": ("money", "CASH", "$$$", "credit"),
    "you": ("u", "YOU", "ya"),
    "your": ("ur", "YOUR", "yr"),
    "check": ("chek", "CHECK", "look at"),
    "channel": ("chanel", "CHANNEL", "page"),
    "subscribe": ("sub", "SUBSCRIBE", "subscribe pls"),
}
_WORD = re.compile(r"[A-Za-z]+")
_EMOJI = ("🔥", "💰", "🎁", "✅", "👉", "💯", "🚀", "❗")


def handle_for(rng: random.Random, style: str = "person") -> tuple[str, str]:
    """(handle, display name) for a person, a brand, or an obvious bot."""
    if style == "brand":
        word = rng.choice(TOPICS)
        return f"{word}{rng.choice(BRAND_WORDS)}", f"{word.title()} {rng.choice(BRAND_WORDS).title()}"
    if style == "bot":
        stem = rng.choice(("promo", "deals", "gift", "win", "bonus", "follow", "crypto", "cash"))
        return f"{stem}{rng.randrange(10**5, 10**7)}", f"{stem.title()} {rng.randrange(100, 999)}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    sep = rng.choice(("_", "", ".", "_"))
    handle = f"{first}{sep}{last}".replace(".", "_")
    r = rng.random()
    if r < 0.45:
        handle += str(rng.randrange(1, 100))
    elif r < 0.6:
        handle += str(rng.randrange(1950, 2010))
    return handle, f"{first.title()} {last.title()}"


def bio_for(rng: random.Random, topic: str) -> str:
    words = rng.sample(INTERESTS, 2)
    return f"{words[0]}, {words[1]}. into {topic}" + (f" | {rng.choice(TOPICS)}" if rng.random() < 0.5 else "")


def similar_handle(rng: random.Random, handle: str) -> str:
    """A handle a ban evader picks to stay recognisable (``maria_k`` -> ``maria_k2``, ``mar1a_k``)."""
    base = handle.rstrip("0123456789")
    r = rng.random()
    if r < 0.4:
        return f"{base}{rng.randrange(2, 100)}"
    if r < 0.7:
        swapped = base.replace("a", "4", 1).replace("o", "0", 1).replace("i", "1", 1)
        return swapped if swapped != base else f"{base}_"
    return f"the_{base}" if rng.random() < 0.5 else f"{base}_real"


def spam_variants(rng: random.Random, base: str, url: str, n: int, heavy: bool) -> list[str]:
    """``n`` near-duplicate variations of one spam text: word substitutions, appended tokens, the link."""
    out = []
    for _ in range(n):
        words = _WORD.split(base)
        toks = _WORD.findall(base)
        new = []
        for tok in toks:
            alts = _SUBS.get(tok.lower())
            new.append(rng.choice(alts) if alts and rng.random() < (0.5 if heavy else 0.25) else tok)
        text = "".join(w + (new[i] if i < len(new) else "") for i, w in enumerate(words))
        if rng.random() < 0.6:
            text += " " + rng.choice(_EMOJI)
        if rng.random() < 0.5:
            text += f" ref{rng.randrange(16**4):04x}"
        if rng.random() < 0.7:
            text += " " + url
        out.append(" ".join(text.split()))
    return out


NARRATIVES = (
    (
        "{they} are {hiding} the truth about the {thing}",
        "{thing}: what {they} will not tell you",
        "nobody is talking about how {they} {rigged} the {thing}",
        "wake up, the {thing} was {rigged} by {they}",
    ),
    (
        "the {thing} numbers do not add up, {share}",
        "{share}: the {thing} figures were {rigged}",
        "why did {they} change the {thing} numbers overnight?",
        "they {rigged} the {thing} count and {they} know it",
    ),
    (
        "{boycott} {brand} until they answer for the {thing}",
        "{brand} funds the {thing} cover-up, {boycott} them",
        "time to {boycott} {brand}, {share}",
        "{brand} lied about the {thing}. {boycott}!",
    ),
)
_FILL = {
    "they": ("they", "the elites", "the media", "officials", "the so-called experts", "insiders"),
    "hiding": ("hiding", "covering up", "burying", "suppressing"),
    "rigged": ("rigged", "faked", "manipulated", "cooked"),
    "share": ("share before it is deleted", "spread the word", "RT this", "pass it on", "read this"),
    "boycott": ("boycott", "drop", "stop buying from", "cancel"),
}


def narrative_variants(rng: random.Random, n: int, thing: str, brand: str, tags: list[str], heavy: bool) -> list[str]:
    """Paraphrases of one narrative: template choice, synonym slots and hashtag placement vary."""
    frames = rng.choice(NARRATIVES)
    out = []
    for _ in range(n):
        text = rng.choice(frames)
        for slot, alts in _FILL.items():
            while "{" + slot + "}" in text:
                text = text.replace("{" + slot + "}", rng.choice(alts), 1)
        text = text.replace("{thing}", thing).replace("{brand}", brand)
        if heavy or rng.random() < 0.5:
            text += " " + " ".join("#" + t for t in tags[: rng.randint(1, len(tags))])
        if rng.random() < 0.3:
            text = text[0].upper() + text[1:]
        out.append(text)
    return out

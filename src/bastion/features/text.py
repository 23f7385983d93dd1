"""Text normalisation against obfuscation, URL/domain helpers and a fast 64-bit text hash.

Pure functions over ``str``, no Bastion imports; the rules engine, detectors and the text models share them so
that "what the model saw" and "what a rule matched" are the same string.

>>> normalize("Y0u are an  I D I O T!!!!")
'you are an idiot!!'
>>> normalize("ѕtuрid b\u200bi\u200bt\u200bc\u200bh")  # Cyrillic look-alikes and zero-width spaces
'stupid bitch'
>>> normalize("id🤬iot 😂")
'idiot 😂'
>>> normalize("f.u.c.k off, l0o0oser")
'fuck off, loser'
>>> domains("win now at www.Free-Prizes.co.uk/claim or bit[.]ly/x9")
['free-prizes.co.uk', 'bit.ly']
>>> text_hash64("hello") == text_hash64("hello") and 0 <= text_hash64("hello") < 2**64
True

``NORMALIZER_VERSION`` changes whenever the output of :func:`normalize` changes for some input; model
artifacts record it and are refused when it differs.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import unicodedata
from urllib.parse import urlsplit

NORMALIZER_VERSION = "norm-v1"

# Characters that render as nothing (or nearly) and are used to split words invisibly.
_INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f"
    "\u3164\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f"
    "\ufeff\uffa0"
)

# Look-alike letters that NFKC leaves alone (Cyrillic, Greek, IPA, small capitals, a few symbols).
_CONFUSABLES = {
    # Cyrillic lower / upper
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "ӏ": "l",
    "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "ɡ": "g", "ү": "y", "ց": "g", "օ": "o", "ս": "u", "ո": "n",
    "А": "a", "В": "b", "Е": "e", "Ё": "e", "Н": "h", "І": "i", "Ј": "j", "К": "k", "М": "m", "О": "o",
    "Р": "p", "С": "c", "Ѕ": "s", "Т": "t", "У": "y", "Х": "x", "Ү": "y", "Ԛ": "q", "Ԝ": "w",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i",
    "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
    # IPA, small capitals, Latin extras
    "ɑ": "a", "ɩ": "i", "ı": "i", "ȷ": "j", "ʀ": "r", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d",
    "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o",
    "ᴘ": "p", "ǫ": "q", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ø": "o", "ß": "ss",
    "ł": "l", "đ": "d", "ħ": "h", "æ": "ae", "œ": "oe", "þ": "th",
}

_INVISIBLE_TABLE = {ord(c): None for c in _INVISIBLE}
_TRANSLATE = {ord(c): None for c in _INVISIBLE} | {ord(k): v for k, v in _CONFUSABLES.items()}

# Leetspeak inside words. "!" and "|" only count between letters, so punctuation survives.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l", "+": "t", "€": "e", "¢": "c", "9": "g"})
_LEET_WORD = re.compile(r"(?<![\w@$#/.])[a-z0-9@$!|+€¢]*[a-z][a-z0-9@$!|+€¢]*")
_LEET_CHARS = re.compile(r"[0-9@$!|+€¢]")
_NUMBER_LIKE = re.compile(r"^(?:\d+[a-z]{1,3}|[a-z]+\d{2,}|\d+(?:st|nd|rd|th|s|am|pm|k|m|x|p|gb|mb|kb))$")

_REPEATS = re.compile(r"(.)\1{2,}")
# Runs of single characters split by one repeated separator: "i d i o t", "f.u.c.k", "s-h-i-t", "b_i_t_c_h".
_SPACED_DOTS = re.compile(r"(?<![\w])(?:[a-z0-9@$](?P<sep>[.\-_*,~]) ?){2,}[a-z0-9@$](?![\w])")
_SPACED_SPACES = re.compile(r"(?<![\w])(?:[a-z0-9@$] ){3,}[a-z0-9@$](?![\w])")
_SPACES = re.compile(r"\s+")
# Emoji and pictographs wedged inside a word ("id🤬iot") are dropped; standalone ones stay as tokens.
_EMOJI_IN_WORD = re.compile(r"(?<=[a-z0-9@$])[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF]+(?=[a-z0-9@$])")
_HTML_TAG = re.compile(r"<\s*/?\s*(?:br|p|a|b|i|div|span)\b[^>]*>", re.I)


def strip_invisible(text: str) -> str:
    """Remove zero-width and other invisible characters.

    >>> strip_invisible("i\u200bd\u200ci\u2060ot\ufeff")
    'idiot'
    """
    return text.translate(_INVISIBLE_TABLE)


def fold_confusables(text: str) -> str:
    """Map compatibility forms (fullwidth, mathematical, circled letters) and look-alike letters to ASCII,
    drop combining marks (accents, "zalgo"), and lower-case.

    >>> fold_confusables("Ｓｔｕｐｉｄ 𝐢𝐝𝐢𝐨𝐭 ⓛⓞⓢⓔⓡ ѕсаm Ɩosér")
    'stupid idiot loser scam ioser'
    """
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    decomposed = unicodedata.normalize("NFKD", text)
    if len(decomposed) != len(text):
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return text.lower().translate(_TRANSLATE)


def join_spaced_letters(text: str) -> str:
    """Join words spelled out with separators between letters (expects lower case).

    >>> join_spaced_letters("you are an i d i o t and a f.u.c.k.i.n.g s-h-i-t")
    'you are an idiot and a fucking shit'
    >>> join_spaced_letters("i am a cat")  # ordinary one-letter words stay
    'i am a cat'
    """
    text = _SPACED_DOTS.sub(lambda m: re.sub(r"[ .\-_*,~]", "", m.group(0)), text)
    return _SPACED_SPACES.sub(lambda m: m.group(0).replace(" ", ""), text)


def unleet(text: str) -> str:
    """Undo leetspeak inside words (expects lower case); numbers, ordinals, times and hashtags stay.

    >>> unleet("@user y0u st00p1d b!tch, sh1t h4pp3ns at 10am on the 3rd, call 0800 123, #trump2020")
    '@user you stoopid bitch, shit happens at 10am on the 3rd, call 0800 123, #trump2020'
    """

    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        tail = len(word) - len(word.rstrip("!|"))
        core, rest = (word[:-tail], word[-tail:]) if tail else (word, "")
        mention = core[:1] == "@"  # "@user" is a mention, not "auser"
        body = core[1:] if mention else core
        if not _LEET_CHARS.search(body) or _NUMBER_LIKE.match(body):
            return word
        return ("@" if mention else "") + body.translate(_LEET) + rest

    if not _LEET_CHARS.search(text):  # nothing to undo (about half of all posts): skip the per-word pass
        return text
    return _LEET_WORD.sub(fix, text)


def squeeze_repeats(text: str, keep: int = 2) -> str:
    """Collapse a character repeated three or more times to ``keep`` copies (default 2).

    >>> squeeze_repeats("stuuuupid!!!!! sooo good")
    'stuupid!! soo good'
    """
    return _REPEATS.sub(lambda m: m.group(1) * keep, text)


@functools.lru_cache(maxsize=16384)
def normalize(text: str) -> str:
    """The canonical form models and rules see: invisible characters removed, look-alikes folded to ASCII,
    lower case, HTML entities and line-break tags decoded, spaced-out words joined, leetspeak undone, repeats
    squeezed (three or more of a letter count as one: "looooser" -> "loser"), whitespace collapsed.
    Memoised (a pure function; the rules, the recorder and each text model ask for the same text)."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    text = fold_confusables(strip_invisible(text))
    if not text.isascii():
        text = _EMOJI_IN_WORD.sub("", text)
    text = _REPEATS.sub(lambda m: m.group(1) if m.group(1).isalpha() else m.group(1) * 2, text)
    text = join_spaced_letters(text)
    text = unleet(text)
    text = _REPEATS.sub(lambda m: m.group(1) if m.group(1).isalpha() else m.group(1) * 2, text)
    return " ".join(text.split())  # the same as _SPACES.sub(" ", text).strip() (both use str.isspace), faster


# --- URLs and domains ------------------------------------------------------------------------------------

_TLDS = (
    "com|net|org|info|biz|io|co|me|ly|tk|ml|ga|cf|gq|xyz|top|club|online|site|live|app|link|click|ru|cn|uk|"
    "de|fr|in|us|tv|gg|to|be|ws|cc|nl|it|es|br|au|ca|jp|pl|ch|se|no|eu|mobi|shop|store|win|bid|loan|vip"
)
_URL = re.compile(
    r"(?:(?:https?|hxxps?)://|www\.)[^\s<>\"']+"
    r"|\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:" + _TLDS + r")\b(?:/[^\s<>\"']*)?",
    re.I,
)
_DEFANG = re.compile(r"\s*[\[(]\s*(?:\.|dot)\s*[\])]\s*|\s+dot\s+", re.I)
_MULTI_PART_SUFFIXES = frozenset(
    ["co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp", "co.in", "co.za", "com.br", "com.cn", "com.mx", "com.tr", "com.sg", "com.my", "com.ar", "co.kr", "co.id", "com.ph", "com.pk", "com.ng"]
)


def refang(text: str) -> str:
    """Undo the usual ways of hiding a dot in a link: ``bit[.]ly``, ``site(dot)com``, ``site dot com``.

    >>> refang("go to bit[.]ly/abc or spam(dot)com or free dot com")
    'go to bit.ly/abc or spam.com or free.com'
    """
    return _DEFANG.sub(".", text)


def find_urls(text: str) -> list[str]:
    """Links in a text, with or without a scheme, defanged dots included.

    >>> find_urls("see https://t.co/xyz and www.example.org, or evil.com/path. Bye.")
    ['https://t.co/xyz', 'www.example.org,', 'evil.com/path.']
    """
    return _URL.findall(refang(text))


def url_host(url: str) -> str:
    """The lower-case host name of a link, without ``www.``, port or credentials.

    >>> url_host("HTTPS://user@WWW.Example.COM:8080/a?b=1")
    'example.com'
    >>> url_host("bit.ly/x")
    'bit.ly'
    """
    url = url.strip().rstrip(".,;:!?)")
    if "://" not in url:
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def registered_domain(host: str) -> str:
    """The registrable domain of a host name (``a.b.example.co.uk`` -> ``example.co.uk``).

    >>> registered_domain("m.facebook.com"), registered_domain("shop.example.co.uk"), registered_domain("localhost")
    ('facebook.com', 'example.co.uk', 'localhost')
    """
    parts = host.lower().strip(".").split(".")
    if len(parts) <= 2:
        return ".".join(parts)
    if ".".join(parts[-2:]) in _MULTI_PART_SUFFIXES:
        return ".".join(parts[-3:])
    return ".".join(parts[-2:])


def domains(text: str) -> list[str]:
    """Registrable domains of the links in a text, in order, without repeats."""
    out: list[str] = []
    for url in find_urls(text):
        host = url_host(url)
        if host:
            dom = registered_domain(host)
            if dom not in out:
                out.append(dom)
    return out


# --- hashing ---------------------------------------------------------------------------------------------


def text_hash64(text: str) -> int:
    """A stable unsigned 64-bit hash of a text (BLAKE2b), the same across processes and machines.

    >>> text_hash64("abc")
    6455300059550759896
    >>> text_hash64("abc") != text_hash64("abd")
    True
    """
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def normalized_hash64(text: str) -> int:
    """:func:`text_hash64` of :func:`normalize` (obfuscated variants of a text share it).

    >>> normalized_hash64("IDIOT") == normalized_hash64("i d 1 o t")
    True
    """
    return text_hash64(normalize(text))

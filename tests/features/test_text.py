"""Normalisation against obfuscation, URL helpers and the text hash."""

from __future__ import annotations

import doctest

import pytest

import bastion.features.text as ft
from bastion.features.text import (
    domains,
    find_urls,
    normalize,
    normalized_hash64,
    registered_domain,
    text_hash64,
    url_host,
)


def test_doctests() -> None:
    res = doctest.testmod(ft)
    assert res.failed == 0 and res.attempted > 10


@pytest.mark.parametrize(
    "obfuscated",
    [
        "idiot", "IDIOT", "1d10t", "i d i o t", "i.d.i.o.t", "i-d-i-o-t", "іdіоt",  # Cyrillic і and о
        "i\u200bd\u200bi\u200bo\u200bt", "iiiidiooooot", "ｉｄｉｏｔ", "𝐢𝐝𝐢𝐨𝐭", "id🤬iot", "ìdíôt",
    ],
)
def test_obfuscations_fold_to_the_plain_word(obfuscated: str) -> None:
    assert normalize(f"you {obfuscated}") == "you idiot"


@pytest.mark.parametrize(
    "text",
    ["call 0800 123 456 now", "at 10am on the 3rd", "i am a cat", "#maga2020 rocks", "@user hi", "it's 2:30"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert normalize(text) == text


def test_normalize_is_idempotent() -> None:
    for text in ["Y0u are an  I D I O T!!!!", "ѕtuрid b\u200bitch", "www.example.com &amp; <br /> hi"]:
        once = normalize(text)
        assert normalize(once) == once


def test_html_and_whitespace() -> None:
    assert normalize("a &amp; b<br />c\n\td") == "a & b c d"


def test_urls_and_domains() -> None:
    text = "Claim at HTTP://WWW.Prize-Win.co.uk/x?y=1, also evil[.]com/p and t.co/abc"
    assert domains(text) == ["prize-win.co.uk", "evil.com", "t.co"]
    assert url_host("https://sub.Example.org:443/path") == "sub.example.org"
    assert registered_domain("a.b.c.example.com.au") == "example.com.au"
    assert find_urls("no links here.") == []


def test_hash_is_stable_and_64_bit() -> None:
    assert text_hash64("abc") == 6455300059550759896  # same on every machine and process
    assert text_hash64("abc") != text_hash64("abd")
    assert normalized_hash64("I D I O T") == normalized_hash64("idiot")

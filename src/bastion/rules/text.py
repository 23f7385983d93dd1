"""Text helpers of the rule language, wired to :mod:`bastion.features.text` so that what a rule matches and
what the text models see is the same normalised string.

>>> normalize("Y0u are an  I D I O T!!!!")
'you are an idiot!!'
>>> url_domain("https://shop.Example.co.uk/x?y=1"), domains("win at free-prizes.biz/claim")
('example.co.uk', ['free-prizes.biz'])
"""

from __future__ import annotations

from bastion.features.text import domains, find_urls, normalize, registered_domain, url_host


def url_domain(url: str) -> str:
    """The registrable domain of a URL ('' when it has no host)."""
    host = url_host(url)
    return registered_domain(host) if host else ""


__all__ = ["normalize", "domains", "find_urls", "url_domain"]

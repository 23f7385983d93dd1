"""Rule packs shipped inside the package. ``default/`` is the default pack (in a checkout, a link to the
repository's ``rules/``, which stays the one copy edited), so an installed wheel has the same rules as the
repository."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PACK = Path(__file__).parent / "default"

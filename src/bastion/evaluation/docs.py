"""Writing one area's section of a shared Markdown document (docs/evaluation.md, docs/benchmarks.md)
between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers, leaving the other sections untouched."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, name: str, markdown: str, title: str | None = None) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``markdown``.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "doc.md"
    >>> write_section(p, "a", "one", title="# Doc")
    >>> write_section(p, "b", "two")
    >>> write_section(p, "a", "uno")
    >>> print(p.read_text())
    # Doc
    <BLANKLINE>
    <!-- BEGIN a -->
    uno
    <!-- END a -->
    <BLANKLINE>
    <!-- BEGIN b -->
    two
    <!-- END b -->
    <BLANKLINE>
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else (f"{title}\n\n" if title else "")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")

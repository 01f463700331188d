"""Rewrite one marked block of a Markdown file: how the benchmark scripts update the docs.

Each benchmark owns the text between its ``<!-- name:start -->`` and
``<!-- name:end -->`` markers in ``docs/benchmarks.md``; the rest of the page is prose
kept by hand.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_block"]


def replace_block(path: Path, start: str, end: str, block: str, *, missing: str = "") -> None:
    """Replace the text from ``start`` to ``end`` (markers included) in ``path`` by ``block``.

    ``block`` must itself begin with ``start`` and end with ``end``. When the file has no
    such markers yet, ``missing`` (e.g. a section heading) and ``block`` are appended; a
    file that does not exist starts empty.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + missing + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

"""Small bar charts as inline SVG: no script, no library, no request of their own."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars"]


def bars(values: Sequence[int], label: str, width: int = 120, height: int = 28) -> str:
    """A bar per value, scaled to the largest; the total and ``label`` as its title."""
    n = max(1, len(values))
    top = max(values, default=0) or 1
    step = width / n
    rects = []
    for i, v in enumerate(values):
        h = 0 if v == 0 else max(1.0, (height - 2) * v / top)
        rects.append(f'<rect x="{i * step + 0.5:.1f}" y="{height - h:.1f}" '
                     f'width="{max(step - 1, 1):.1f}" height="{h:.1f}"/>')
    title = escape(f"{label}: {sum(values)}")
    return (f'<svg class="bars" role="img" aria-label="{title}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}"><title>{title}</title>'
            f'{"".join(rects)}</svg>')

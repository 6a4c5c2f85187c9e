"""Series colours that read on dark and light backgrounds alike.

Plotext's default sequence has a bright yellow that vanishes on a light theme;
these are mid-luminance colours (from Tableau 10, minus its yellow and grey).
"""

from __future__ import annotations

SERIES_COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),  # blue
    (255, 127, 14),  # orange
    (44, 160, 44),  # green
    (214, 39, 40),  # red
    (148, 103, 189),  # purple
    (140, 86, 75),  # brown
    (227, 119, 194),  # pink
    (23, 190, 207),  # cyan
)


def series_color(index: int) -> tuple[int, int, int]:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


def hex_color(index: int) -> str:
    r, g, b = series_color(index)
    return f"#{r:02x}{g:02x}{b:02x}"

"""One diverging colour scale for every renderer: red raised the target, blue lowered it.

Text drawn on a score's colour is black or white, whichever contrasts more with it: either
reaches WCAG's 4.5:1 for normal text on every colour of the scale (black needs a relative
luminance >= 0.175, white <= 0.183, so one of them always does).
"""

from __future__ import annotations

POSITIVE = (214, 39, 40)
NEGATIVE = (31, 119, 180)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
MIN_CONTRAST = 4.5  # WCAG 2.x AA, normal text

RGB = tuple[int, int, int]


def score_rgb(normalized: float) -> RGB:
    """White at 0, full red at +1, full blue at -1 (clipped)."""
    t = max(-1.0, min(1.0, normalized))
    end = POSITIVE if t >= 0 else NEGATIVE
    a = abs(t)
    return tuple(round(w + (e - w) * a) for w, e in zip(WHITE, end))  # type: ignore[return-value]


def hex_of(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def score_hex(normalized: float) -> str:
    return hex_of(score_rgb(normalized))


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_rgb(background: RGB) -> RGB:
    """Black or white, whichever contrasts more with ``background``."""
    return BLACK if contrast(BLACK, background) >= contrast(WHITE, background) else WHITE


def text_hex(background: RGB) -> str:
    return hex_of(text_rgb(background))


def parse_hex(value: str) -> RGB:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)

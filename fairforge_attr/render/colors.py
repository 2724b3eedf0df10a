"""One diverging colour scale for every renderer: red raised the target, blue lowered it."""

from __future__ import annotations

POSITIVE = (214, 39, 40)
NEGATIVE = (31, 119, 180)
WHITE = (255, 255, 255)


def score_rgb(normalized: float) -> tuple[int, int, int]:
    """White at 0, full red at +1, full blue at -1 (clipped)."""
    t = max(-1.0, min(1.0, normalized))
    end = POSITIVE if t >= 0 else NEGATIVE
    a = abs(t)
    return tuple(round(w + (e - w) * a) for w, e in zip(WHITE, end))  # type: ignore[return-value]


def score_hex(normalized: float) -> str:
    r, g, b = score_rgb(normalized)
    return f"#{r:02x}{g:02x}{b:02x}"

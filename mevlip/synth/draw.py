"""Drawing primitives for mini-FLARE images: noisy modality backgrounds and answer-carrying marks.

Answers are drawn as colour, position, size or count (a tiny vision tower reads colour far better than fine
shape, as stand-in training runs on CPU showed), so every answer is recoverable from its image.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

#: 12 well-separated colours (Sasha Trubetskoy's list); class i of a dataset is drawn in PALETTE[i].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)


def hues(n: int, saturation: float = 0.9, value: float = 0.95) -> list[tuple[int, int, int]]:
    """``n`` evenly spaced hues (for label sets larger than the palette, e.g. 24 chromosome ids)."""
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / n, saturation, value)) for i in range(n)]


def background(rng: np.random.Generator, size: tuple[int, int], base: tuple[int, int, int], noise: float = 10.0):
    """A noisy flat background (``size`` = (width, height)) as a PIL RGB image plus its draw handle."""
    w, h = size
    arr = np.asarray(base, dtype=np.float32)[None, None, :] + rng.normal(0.0, noise, size=(h, w, 1))
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))  # (h, w, 3) uint8 -> RGB: grey noise on a tint
    return image, ImageDraw.Draw(image)


def jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int = 12) -> tuple[int, int, int]:
    """A colour with small random variation, so a class is a colour region, not one exact value."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def disc(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill) -> list[int]:
    """Draw a filled circle; returns its integer bounding box ``[x1, y1, x2, y2]``."""
    box = [int(round(cx - r)), int(round(cy - r)), int(round(cx + r)), int(round(cy + r))]
    draw.ellipse(box, fill=fill)
    return box


def random_box(rng: np.random.Generator, size: tuple[int, int], wmin: int, wmax: int, hmin: int, hmax: int,
               avoid: list[list[int]] | None = None, tries: int = 50) -> list[int]:
    """A random box inside the image that does not overlap the boxes in ``avoid`` (best effort)."""
    w, h = size
    box = [0, 0, wmin, hmin]
    for _ in range(tries):
        bw, bh = int(rng.integers(wmin, wmax + 1)), int(rng.integers(hmin, hmax + 1))
        x1, y1 = int(rng.integers(1, max(2, w - bw - 1))), int(rng.integers(1, max(2, h - bh - 1)))
        box = [x1, y1, x1 + bw, y1 + bh]
        if not avoid or all(_disjoint(box, other) for other in avoid):
            return box
    return box


def _disjoint(a: list[int], b: list[int], margin: int = 2) -> bool:
    return a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]

"""A course picture's intrinsic size, so the page reserves its box before the picture loads.

Without it a picture below the fold that loads late pushes the text down under the reader (and
the chapter's end out of view after a jump to it). SVGs give their size in the root element's
``width``/``height`` or ``viewBox``; raster formats are read by Pillow from their header only.
"""

from __future__ import annotations

import io
import re

from PIL import Image, UnidentifiedImageError

_SVG_ROOT = re.compile(rb"<svg\b[^>]*>", re.I | re.S)
_ATTR = r"""\b{}\s*=\s*["']\s*([0-9.]+)\s*(px)?\s*["']"""
_VIEWBOX = re.compile(rb"""\bviewBox\s*=\s*["']\s*[-0-9.]+[\s,]+[-0-9.]+[\s,]+([0-9.]+)[\s,]+([0-9.]+)\s*["']""", re.I)
#: Larger than any picture a chapter shows; beyond it the numbers are taken as nonsense.
MAX_SIDE = 20_000


def image_size(path: str, content: bytes) -> tuple[int, int] | None:
    """(width, height) in CSS pixels, or None when the file does not say (the page then waits)."""
    if path.lower().endswith(".svg"):
        size = _svg_size(content)
    else:
        try:
            with Image.open(io.BytesIO(content)) as picture:
                size = picture.size
        except (UnidentifiedImageError, OSError, ValueError):
            return None
    if size is None:
        return None
    width, height = round(size[0]), round(size[1])
    return (width, height) if 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE else None


def _svg_size(content: bytes) -> tuple[float, float] | None:
    root = _SVG_ROOT.search(content[:8192])
    if root is None:
        return None
    tag = root.group(0)
    width = re.search(_ATTR.format("width").encode(), tag)
    height = re.search(_ATTR.format("height").encode(), tag)
    if width and height:
        return float(width.group(1)), float(height.group(1))
    box = _VIEWBOX.search(tag)
    if box:
        return float(box.group(1)), float(box.group(2))
    return None

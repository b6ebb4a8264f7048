"""Detections drawn on an image (the demo's detections.png, predict's pictures): translucent masks,
boxes, class names and scores, one colour per class. Needs pillow and numpy (the demo extra)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# Colours by label (1, 2, 3, ...), repeating: red, blue, green first (the demo's three shapes).
PALETTE = [
    (230, 60, 60),
    (60, 130, 240),
    (40, 190, 90),
    (240, 170, 30),
    (160, 80, 220),
    (30, 190, 200),
    (230, 90, 170),
    (120, 120, 120),
]


def colour(label: int) -> tuple[int, int, int]:
    return PALETTE[(label - 1) % len(PALETTE)]


def draw_detections(
    image: torch.Tensor,
    boxes: list,
    labels: list[int],
    masks: np.ndarray,
    names: list[str],
    scores: list[float] | None = None,
    scale: int = 1,
) -> Image.Image:
    """image [3, H, W] in [0, 1]; boxes (x1, y1, x2, y2) in its pixels; masks [K, H, W] bool;
    names by label. Drawn `scale` times larger (nearest neighbour), the last detection on top."""
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.float32)
    for label, mask in zip(labels, masks):
        pixels[mask] = 0.5 * pixels[mask] + 0.5 * np.array(colour(label), dtype=np.float32)
    height, width = pixels.shape[:2]
    picture = Image.fromarray(pixels.astype(np.uint8)).resize(
        (width * scale, height * scale), Image.NEAREST
    )
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=11)
    for k, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour(label), width=2)
        text = names[label] + ("" if scores is None else f" {scores[k]:.2f}")
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        y = max(0, y1 - (bottom - top) - 3)
        draw.rectangle((x1, y, x1 + right - left + 4, y + bottom - top + 3), fill=colour(label))
        draw.text((x1 + 2, y + 1 - (top - y1)), text, fill=(255, 255, 255), font=font)
    return picture

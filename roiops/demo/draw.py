"""detections.png: held-out images, ground truth on the left of each pair, the model's detections
(boxes, class names, scores, translucent masks) on the right."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .shapes import CLASSES

CLASS_COLOURS = {1: (230, 60, 60), 2: (60, 130, 240), 3: (40, 190, 90)}
SHOWN_SCORE = 0.5  # detections below this are not drawn (they still count in the AP)
SCALE = 2
GAP = 8
HEADER = 22


def _panel(image: torch.Tensor, boxes, labels, masks, scores=None) -> Image.Image:
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.float32)
    for label, mask in zip(labels, masks):
        colour = np.array(CLASS_COLOURS[label], dtype=np.float32)
        pixels[mask] = 0.5 * pixels[mask] + 0.5 * colour
    height, width = pixels.shape[:2]
    panel = Image.fromarray(pixels.astype(np.uint8)).resize(
        (width * SCALE, height * SCALE), Image.NEAREST
    )
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=11)
    for k, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (v * SCALE for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=CLASS_COLOURS[label], width=2)
        text = CLASSES[label] + ("" if scores is None else f" {scores[k]:.2f}")
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        y = max(0, y1 - (bottom - top) - 3)
        draw.rectangle(
            (x1, y, x1 + right - left + 4, y + bottom - top + 3), fill=CLASS_COLOURS[label]
        )
        draw.text((x1 + 2, y + 1 - (top - y1)), text, fill=(255, 255, 255), font=font)
    return panel


def draw_detections(
    path, images: list[torch.Tensor], targets: list[dict], outputs: list[dict], per_row: int = 2
) -> None:
    panels = []
    for image, target, output in zip(images, targets, outputs):
        # lowest score first, so that where labels overlap the most confident one is on top
        order = output["scores"].argsort()
        shown = order[output["scores"][order] >= SHOWN_SCORE]
        truth = _panel(
            image,
            target["boxes"].tolist(),
            target["labels"].tolist(),
            target["masks"].bool().numpy(),
        )
        found = _panel(
            image,
            output["boxes"][shown].tolist(),
            output["labels"][shown].tolist(),
            (output["masks"][shown, 0] > 0.5).numpy(),
            output["scores"][shown].tolist(),
        )
        panels.append((truth, found))
    side = panels[0][0].width
    rows = (len(panels) + per_row - 1) // per_row
    sheet = Image.new(
        "RGB",
        (per_row * (2 * side + 3 * GAP) - GAP, HEADER + rows * (side + GAP)),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for column in range(per_row):
        left = column * (2 * side + 3 * GAP)
        draw.text((left, 3), "ground truth", fill=(0, 0, 0), font=font)
        draw.text(
            (left + side + GAP, 3),
            f"detections (score >= {SHOWN_SCORE})",
            fill=(0, 0, 0),
            font=font,
        )
    for k, (truth, found) in enumerate(panels):
        left = (k % per_row) * (2 * side + 3 * GAP)
        top = HEADER + (k // per_row) * (side + GAP)
        sheet.paste(truth, (left, top))
        sheet.paste(found, (left + side + GAP, top))
    sheet.save(path)

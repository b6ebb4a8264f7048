"""detections.png: held-out images, ground truth on the left of each pair, the model's detections
(boxes, class names, scores, translucent masks) on the right."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont

from .._drawing import draw_detections as draw_on
from .shapes import CLASSES

SHOWN_SCORE = 0.5  # detections below this are not drawn (they still count in the AP)
SCALE = 2
GAP = 8
HEADER = 22


def draw_detections(
    path, images: list[torch.Tensor], targets: list[dict], outputs: list[dict], per_row: int = 2
) -> None:
    panels = []
    for image, target, output in zip(images, targets, outputs):
        # lowest score first, so that where labels overlap the most confident one is on top
        order = output["scores"].argsort()
        shown = order[output["scores"][order] >= SHOWN_SCORE]
        truth = draw_on(
            image,
            target["boxes"].tolist(),
            target["labels"].tolist(),
            target["masks"].bool().numpy(),
            CLASSES,
            scale=SCALE,
        )
        found = draw_on(
            image,
            output["boxes"][shown].tolist(),
            output["labels"][shown].tolist(),
            (output["masks"][shown, 0] > 0.5).numpy(),
            CLASSES,
            output["scores"][shown].tolist(),
            scale=SCALE,
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

"""A seeded synthetic instance-segmentation dataset: squares, circles and triangles of random
colour, size, position and rotation on a textured background, with their boxes and masks. Later
shapes occlude earlier ones; the targets are what stays visible. Nothing is downloaded."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

CLASSES = ("background", "square", "circle", "triangle")
IMAGE_SIZE = 128
MIN_VISIBLE_FRACTION = 0.4  # a shape hidden more than this is not a target (nor is it in COCO's)


def _outline(kind: int, cx: float, cy: float, radius: float, angle: float) -> list[tuple]:
    corners = 4 if kind == 1 else 3
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / corners),
            cy + radius * math.sin(angle + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random gradient plus pixel noise, so that 'not a shape' is not one flat colour."""
    corners = rng.uniform(0, 255, size=(2, 2, 3))
    t = np.linspace(0, 1, size)[:, None, None]
    s = np.linspace(0, 1, size)[None, :, None]
    top = corners[0, 0] * (1 - s) + corners[0, 1] * s
    bottom = corners[1, 0] * (1 - s) + corners[1, 1] * s
    image = top * (1 - t) + bottom * t
    return image + rng.normal(0, 8, size=image.shape)


def sample(rng: np.random.Generator, size: int = IMAGE_SIZE) -> tuple[torch.Tensor, dict]:
    """One image Tensor[3, size, size] in [0, 1] and its target: boxes [G, 4] float32 (x1, y1,
    x2, y2, pixel edges), labels [G] int64 (1 square, 2 circle, 3 triangle), masks [G, H, W]
    uint8."""
    image = _background(rng, size)
    masks, labels, areas = [], [], []
    for _ in range(rng.integers(1, 5)):
        kind = int(rng.integers(1, 4))
        radius = rng.uniform(0.07, 0.2) * size
        cx, cy = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        if kind == 2:
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=1)
        else:
            draw.polygon(_outline(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi)), fill=1)
        mask = np.asarray(canvas, dtype=bool)
        if mask.sum() < 16:
            continue
        colour = rng.uniform(0, 255, size=3)
        while np.abs(colour - image[mask].mean(axis=0)).max() < 60:  # keep it visible
            colour = rng.uniform(0, 255, size=3)
        image[mask] = colour + rng.normal(0, 8, size=(int(mask.sum()), 3))
        for earlier in masks:
            earlier &= ~mask
        masks.append(mask)
        labels.append(kind)
        areas.append(int(mask.sum()))
    kept = [
        (m, label)
        for m, label, area in zip(masks, labels, areas)
        if m.sum() >= max(16, MIN_VISIBLE_FRACTION * area)
    ]
    boxes = []
    for mask, _ in kept:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([label for _, label in kept], dtype=torch.int64),
        "masks": torch.from_numpy(np.stack([m for m, _ in kept]).astype(np.uint8))
        if kept
        else torch.zeros(0, size, size, dtype=torch.uint8),
    }
    # 8-bit pixels, as a photo's: the images saved as PNG (predict's input) are these exactly.
    pixels = torch.from_numpy(np.clip(image, 0, 255).round().astype(np.float32) / 255)
    return pixels.permute(2, 0, 1).contiguous(), target


class ShapesDataset(torch.utils.data.Dataset):
    """`length` images of one seeded set (`part` 0 the training images, 1 the held-out ones). Image
    i is drawn from its own generator, seeded by (seed, part, i): any process draws any image, so a
    DistributedSampler can hand each rank its share of a batch and every image is seen once."""

    def __init__(self, seed: int, part: int, length: int) -> None:
        self.seed, self.part, self.length = seed, part, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"image {index} of a set of {self.length}")
        return sample(np.random.default_rng([self.seed, self.part, index]))


def save_images(folder, images: list[torch.Tensor]) -> None:
    """Images as 000.png, 001.png, ...: their 8-bit pixels exactly (sample() quantises them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def as_lists(items: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """A DataLoader's collate_fn: images of a batch and their targets as the model takes them."""
    return [image for image, _ in items], [target for _, target in items]

"""Images as the deployed model takes them: PNG / JPEG files and folders read as [3, H, W] floats in
[0, 1], and letterboxed to the model's fixed input size (scaled to fit, padded with the mean
colour, which the model's normalisation turns to zero, as torchvision pads its batches).
predict reads its inputs this way, export its calibration images; examples/cpp letterboxes the
same way in C++."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ArgumentValueError
from .model_files import ModelInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_dependencies(command: str) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ArgumentValueError(
            f"{command} reads images with pillow: pip install pillow (or pip install "
            "'roiops[demo]')"
        ) from None


def image_files(inputs: list[str]) -> list[Path]:
    """The files named, and the PNG / JPEG files of the folders named (not their subfolders),
    in the order given, each folder's sorted by name. (Paths only: a folder of 100 000 images
    lists in 1.2 s and 24 MB here; the images are read a few batches at a time.)"""
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise ArgumentValueError(f"{name}: no such file or folder")
    if not files:
        raise ArgumentValueError(f"no PNG or JPEG image in {', '.join(inputs)}")
    return files


class ImageTooLarge(ValueError):
    """More pixels than pillow decodes safely (its decompression-bomb limit)."""


def read_image(path: Path, background: tuple[float, ...] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """[3, H, W] float32 in [0, 1], the image as a viewer shows it:
    - turned upright by its EXIF orientation (a phone's photo stored sideways);
    - 8 bits per channel, / 255: 16-bit PNGs keep their high byte (pillow's reading of 16-bit
      colour, applied to 16-bit grey too, which pillow would otherwise clip at 255);
    - palette, grey, CMYK and YCbCr as RGB; an alpha channel (or a tRNS transparent colour)
      composited onto `background` (predict passes the model's mean colour, the colour its
      letterbox pads with, which the normalisation turns to zero).
    Raises ImageTooLarge above pillow's Image.MAX_IMAGE_PIXELS (~89 M pixels; raise it to read
    larger), and pillow's own errors for files it cannot decode (truncated, not an image).
    examples/cpp/predict.cpp reads PNGs the same way."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        # pillow warns between 1x and 2x its limit and refuses above: refused here at 1x.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    with image:
        limit = Image.MAX_IMAGE_PIXELS
        width, height = image.size
        if limit is not None and width * height > limit:
            raise ImageTooLarge(
                f"{width}x{height} = {width * height} pixels, more than pillow's "
                f"decompression-bomb limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS)"
            )
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey
            grey = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
            image = Image.fromarray(grey, mode="L")
        has_alpha = "A" in image.mode or "a" in image.mode or "transparency" in image.info
        pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32)
    pixels /= 255
    if has_alpha:
        alpha = pixels[..., 3:]
        colour = np.asarray(background, dtype=np.float32)
        pixels = pixels[..., :3] * alpha + colour * (1 - alpha)
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()


# --- letterboxing: one fixed input size for images of any size ----------------------------------


def letterbox_size(height: int, width: int, info: ModelInfo) -> tuple[float, int, int]:
    """The scale that fits an image into the model's size, and the scaled image's size (rounded
    half up; examples/cpp computes the same in double)."""
    scale = min(info.image_height / height, info.image_width / width)
    scaled_h = min(max(int(math.floor(height * scale + 0.5)), 1), info.image_height)
    scaled_w = min(max(int(math.floor(width * scale + 0.5)), 1), info.image_width)
    return scale, scaled_h, scaled_w


def letterbox(image: torch.Tensor, info: ModelInfo) -> tuple[torch.Tensor, float]:
    """image [3, h, w] in [0, 1] -> [3, H, W]: scaled to fit (bilinear, F.interpolate's), in the
    top-left corner, the rest the mean colour; and the scale."""
    height, width = image.shape[-2:]
    scale, scaled_h, scaled_w = letterbox_size(height, width, info)
    if (scaled_h, scaled_w) != (height, width):
        image = torch.nn.functional.interpolate(
            image[None], size=(scaled_h, scaled_w), mode="bilinear", align_corners=False
        )[0]
    mean = torch.tensor(info.image_mean, dtype=image.dtype)[:, None, None]
    canvas = mean.expand(3, info.image_height, info.image_width).clone()
    canvas[:, :scaled_h, :scaled_w] = image
    return canvas, scale

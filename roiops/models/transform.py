"""Images in, one padded batch out -- and detections mapped back to the original images.

normalize -> resize (the shorter side to min_size, the longer at most max_size; torchvision's
rounding) -> pad the batch to a multiple of 32 (every FPN level then divides it exactly).
"""

from __future__ import annotations

import math
import struct

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._onnx import cast, constant, lowering, op
from ..errors import ArgumentTypeError, ArgumentValueError
from ..ops.anchors import ImageList
from ..ops.paste_masks import paste_masks_in_image


def float32_ratio(new: int, old: int) -> float:
    """new / old rounded to float32 -- torchvision divides two float32 tensors. Rounding the double
    quotient is the same (a double has more than twice float32's precision), and a Python number
    needs no tensor on the device: nothing to copy there, so CUDA graphs can capture it."""
    return struct.unpack("f", struct.pack("f", new / old))[0]


def resize_boxes(boxes: Tensor, original: tuple[int, int], new: tuple[int, int]) -> Tensor:
    """Boxes [..., 4] scaled from an image of size `original` to one of size `new`, by torchvision's
    float32 ratios."""
    ratio_h, ratio_w = float32_ratio(new[0], original[0]), float32_ratio(new[1], original[1])
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1 * ratio_w, y1 * ratio_h, x2 * ratio_w, y2 * ratio_h], dim=-1)


def resize_images(images: Tensor, scale: float) -> Tensor:
    """[N, C, H, W] resized by `scale` as torchvision's transform resizes (bilinear, the output size
    floor(size * scale)); an op, so that compiled models keep ATen's arithmetic."""
    return torch.ops.roiops._resize_images(images, float(scale))


@lowering("_resize_images")
def _resize_images_onnx(images, scale):
    """ONNX's Resize, linear, pytorch_half_pixel (F.interpolate's align_corners=False), to the
    sizes F.interpolate computes: floor(size * scale) in double."""
    sides = cast(op.Shape(images, start=2, end=4), torch.float64)
    sides = cast(op.Floor(op.Mul(sides, constant(scale, torch.float64))), torch.int64)
    sizes = op.Concat(op.Shape(images, start=0, end=2), sides, axis=0)
    return op.Resize(
        images,
        None,
        None,
        sizes,
        mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel",
    )


class DetectionTransform(nn.Module):
    def __init__(
        self,
        min_size: int | tuple[int, ...],
        max_size: int,
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
        size_divisible: int = 32,
    ) -> None:
        super().__init__()
        self.min_size = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        self.max_size = max_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        # On the model's device, so that normalizing copies nothing from the host (CUDA graphs);
        # float64, so that casting to the images' dtype rounds as torch.as_tensor(image_mean) does.
        # Not in the state_dict (torchvision's has none).
        self.register_buffer("mean", torch.tensor(image_mean, dtype=torch.float64), False)
        self.register_buffer("std", torch.tensor(image_std, dtype=torch.float64), False)
        self.size_divisible = size_divisible

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None]:
        self._check(images)
        if targets is not None:
            targets = [dict(t) for t in targets]  # resized copies; the caller's stay as they were
        resized = []
        for i, image in enumerate(images):
            image = self.normalize(image)
            image, target = self.resize(image, targets[i] if targets is not None else None, i)
            resized.append(image)
            if targets is not None:
                targets[i] = target
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in resized]
        return ImageList(self.batch_images(resized), sizes), targets

    def _check(self, images: list[Tensor]) -> None:
        if not isinstance(images, (list, tuple)) or len(images) == 0:
            raise ArgumentValueError("images must be a non-empty list of Tensor[3, H, W]")
        channels = len(self.image_mean)
        for i, image in enumerate(images):
            if not isinstance(image, Tensor) or image.dim() != 3:
                shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ArgumentValueError(f"images[{i}] must be a Tensor[3, H, W], got {shape}")
            if image.size(0) != channels:
                raise ArgumentValueError(
                    f"images[{i}] has {image.size(0)} channels; the model normalizes {channels} "
                    f"(image_mean={self.image_mean}), got shape {tuple(image.shape)}"
                )
            if not image.is_floating_point():
                raise ArgumentTypeError(
                    f"images[{i}] must be floating, with values in [0, 1], got {image.dtype}"
                )

    def normalize(self, image: Tensor) -> Tensor:
        """[..., C, H, W] -> (image - mean) / std per channel."""
        mean = self.mean.to(device=image.device, dtype=image.dtype)
        std = self.std.to(device=image.device, dtype=image.dtype)
        return (image - mean[:, None, None]) / std[:, None, None]

    def resize(
        self, image: Tensor, target: dict[str, Tensor] | None, index: int = 0
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        if self.training:  # torchvision draws the size with torch's RNG, one draw per image
            draw = torch.empty(1).uniform_(0.0, float(len(self.min_size)))
            size = self.min_size[int(draw.item())]
        else:
            size = self.min_size[-1]
        scale = self.resize_scale(height, width, size)
        if math.floor(height * scale) < 1 or math.floor(width * scale) < 1:
            raise ArgumentValueError(
                f"images[{index}] of size {height}x{width} resizes to nothing: its shorter side "
                f"would become {min(height, width) * scale:.2f} pixels (min_size={size}, "
                f"max_size={self.max_size})"
            )
        image = resize_images(image[None], scale)[0]
        if target is None:
            return image, None
        new_size = (int(image.shape[-2]), int(image.shape[-1]))
        target["boxes"] = resize_boxes(target["boxes"], (height, width), new_size)
        if "masks" in target:
            masks = target["masks"][:, None].float()
            masks = F.interpolate(masks, scale_factor=scale, recompute_scale_factor=True)
            target["masks"] = masks[:, 0].byte()
        return image, target

    def resize_scale(self, height: int, width: int, min_size: int) -> float:
        """The shorter side to min_size, unless the longer would then exceed max_size."""
        return min(min_size / min(height, width), self.max_size / max(height, width))

    def padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) rounded up to a multiple of size_divisible."""
        stride = float(self.size_divisible)
        return tuple(int(math.ceil(side / stride) * stride) for side in size)

    def batch_images(self, images: list[Tensor]) -> Tensor:
        """[N, C, H_pad, W_pad]: each image in the top-left corner, zeros around it."""
        height, width = self.padded_size(
            (max(im.shape[-2] for im in images), max(im.shape[-1] for im in images))
        )
        batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
        for i, image in enumerate(images):
            batch[i, :, : image.shape[-2], : image.shape[-1]].copy_(image)
        return batch

    def batch_padded(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """forward in fixed shapes, for a batch [N, C, H, W] of one size (StaticMaskRCNN):
        normalized, resized, padded to the stride; and the resized (height, width)."""
        height, width = int(images.shape[-2]), int(images.shape[-1])
        scale = self.resize_scale(height, width, self.min_size[-1])
        x = resize_images(self.normalize(images), scale)
        resized = (int(x.shape[-2]), int(x.shape[-1]))
        padded = self.padded_size(resized)
        return F.pad(x, (0, padded[1] - resized[1], 0, padded[0] - resized[0])), resized

    def postprocess_padded(
        self,
        detections: dict[str, Tensor],
        roi_masks: Tensor | None,  # [N * K, 1, M, M] probabilities of each slot's class
        size: tuple[int, int],
        original: tuple[int, int],
        paste: bool = True,
    ) -> dict[str, Tensor]:
        """postprocess in fixed shapes: boxes [N, K, 4] back to the original images, and with
        roi_masks, masks [N, K, H, W] pasted into them (or, paste=False, roi_masks [N, K, M, M]);
        padding slots (label -1) keep zero masks."""
        labels = detections["labels"]
        result = dict(detections, boxes=resize_boxes(detections["boxes"], size, original))
        if roi_masks is None:
            return result
        n, k = labels.shape
        # Padding slots' masks are zeroed before pasting (a zero mask pastes zeros): the same
        # result as zeroing the pasted [N, K, H, W], without another pass over it.
        valid = (labels >= 0)[..., None, None]
        roi_masks = torch.where(valid, roi_masks.reshape(n, k, *roi_masks.shape[-2:]), 0)
        if not paste:
            result["roi_masks"] = roi_masks
            return result
        pasted = paste_masks_in_image(
            roi_masks.reshape(n * k, 1, *roi_masks.shape[-2:]), result["boxes"].reshape(-1, 4),
            original,
        )  # fmt: skip
        result["masks"] = pasted.reshape(n, k, *original)
        return result

    def postprocess(
        self,
        detections: list[dict[str, Tensor]],
        image_sizes: list[tuple[int, int]],
        original_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Boxes back to each original image; masks pasted into it (one op for all masks)."""
        for detection, size, original in zip(detections, image_sizes, original_sizes):
            detection["boxes"] = resize_boxes(detection["boxes"], size, original)
            if "masks" in detection:
                detection["masks"] = paste_masks_in_image(
                    detection["masks"], detection["boxes"], original
                )
        return detections

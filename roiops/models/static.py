"""Mask R-CNN inference with fixed shapes and no host synchronisation: exportable
(`torch.export`), compilable with `fullgraph=True`, capturable in a CUDA graph.

The eager model (detector.py) compacts with boolean indexing and loops over images in Python; here
every step keeps its full size and carries validity along instead. Each step is the fixed-shape
form its module keeps beside its eager one (DetectionTransform.batch_padded / postprocess_padded,
RegionProposalNetwork.forward_padded, RoIHeads.detect_padded / masks_padded,
poolers.pool_padded); this file only assembles them:

    RPN          per-level top-k (the eager call), decode + clip + small-box test of all of them,
                 invalid boxes get class -1, fixed-size batched NMS -> [N, post_nms_top_n] proposals
                 and a validity mask
    box branch   every proposal slot pooled (an invalid one at level -1: a zero row), the box head
    detections   every (proposal, class) box decoded and tested, fixed-size class-wise NMS ->
                 [N, K] detections, K = max_detections
    mask branch  every detection slot pooled and pasted; padded slots are zeroed

Ties: the fixed-size NMS orders equal scores by index (a stable sort). torchvision's batched_nms,
and so the eager model, orders them the same below 4000 box coordinates and by an unstable sort
above; there equal-score boxes may come out in another order (test_static.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ArgumentTypeError, ArgumentValueError
from .detector import MaskRCNN

DETECTIONS = ["boxes", "scores", "labels", "num_detections"]  # forward's first outputs, in order


class StaticMaskRCNN(nn.Module):
    """A roiops Mask R-CNN (or Faster R-CNN) for batches of equal-size images, in fixed shapes.

    Shares the wrapped model's modules and weights (no copy). Inference only.

    forward(images: Tensor[N, 3, H, W], values in [0, 1]) -> dict of
        boxes [N, K, 4] (original pixels), scores [N, K], labels [N, K] int64,
        masks [N, K, H, W] (probabilities; Mask R-CNN only), num_detections [N] int64.
    Row j < num_detections[i] is image i's j-th detection of the eager model; the other rows have
    score 0, label -1, zero box and mask.

    With paste_masks=False, "roi_masks" [N, K, M, M] (M = 28) replaces "masks": each detection's
    mask probabilities in its box, unpasted (paste_masks_in_image(roi_masks[i, :, None], boxes[i],
    (H, W)) gives masks[i]) -- what a deployment that pastes on the host wants.
    """

    def __init__(
        self, model: MaskRCNN, max_detections: int = 100, paste_masks: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(model, MaskRCNN):
            raise ArgumentTypeError(
                f"model must be a roiops.models.MaskRCNN, got {type(model).__name__}"
            )
        if max_detections < 1:
            raise ArgumentValueError(f"max_detections must be positive, got {max_detections}")
        self.model = model
        self.max_detections = int(max_detections)
        self.paste_masks = bool(paste_masks)
        self.training = False  # its own flag only: the wrapped model's mode stays the caller's

    @property
    def output_names(self) -> list[str]:
        """The names of forward's outputs, in order (torch.onnx.export's output_names)."""
        masks = (
            ["masks" if self.paste_masks else "roi_masks"] if self.model.roi_heads.has_mask else []
        )
        return [*DETECTIONS, *masks]

    def train(self, mode: bool = True) -> StaticMaskRCNN:
        """Inference only: the model stays in eval mode, also when an exporter restores the mode
        it found (torch.onnx's TorchScript exporter restores a wrapper built in training mode)."""
        return super().train(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        model, heads = self.model, self.model.roi_heads
        if model.training:
            raise ArgumentValueError("StaticMaskRCNN is for inference: call .eval() on it first")
        if images.dim() != 4 or images.shape[1] != len(model.transform.image_mean):
            raise ArgumentValueError(
                f"images must be a Tensor[N, 3, H, W] batch, got shape {tuple(images.shape)}"
            )
        height, width = images.shape[-2], images.shape[-1]
        if torch.compiler.is_exporting() and not (
            isinstance(height, int) and isinstance(width, int)
        ):
            raise ArgumentValueError(
                "StaticMaskRCNN's image size is a constant of its graph: export it with only the "
                "batch dimension dynamic (images of other sizes are letterboxed to it, as roiops "
                "predict does)"
            )
        original = (int(height), int(width))
        if torch.jit.is_tracing():
            # TorchScript's exporter cannot be told the size is fixed (dynamic_axes on it are
            # taken): the graph itself refuses another size, where it would compute garbage.
            images = images.reshape(-1, images.shape[1], *original)
        batch, size = model.transform.batch_padded(images)
        features = model.backbone(batch)
        proposals, valid = model.rpn.forward_padded(batch, features, size)
        boxes, scores, labels, count = heads.detect_padded(
            features, proposals, valid, size, self.max_detections
        )
        detections = dict(zip(DETECTIONS, (boxes, scores, labels, count)))
        roi_masks = heads.masks_padded(features, boxes, labels, size) if heads.has_mask else None
        return model.transform.postprocess_padded(
            detections, roi_masks, size, original, self.paste_masks
        )

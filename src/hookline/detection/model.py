"""A small CenterNet-style detector in plain torch: a conv backbone and three heads.

On a grid ``stride`` times coarser than the image, the ``obj`` head scores "a box is centred
in this cell", the ``cls`` head gives the class there and the ``box`` head the centre's offset
in the cell and the box's log width and height (in cells). ``decode`` turns the maps into
boxes: local maxima of ``obj`` (a 3x3 max-pool stands in for non-maximum suppression), scored
``obj * p(class)``.

The module declares Lightning's steps, so any hookline door trains it as it is: a
``training_step`` returning ``{"box": ..., "cls": ..., "obj": ...}`` (logged as
``train/box``...), the same ``validation_step`` (``val/box``...) and a ``predict_step``
returning ``{"boxes": [...]}`` (one ``hookline.boxes.Boxes`` per image: ``result.boxes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hookline.boxes import Boxes

__all__ = ["ShapesDetector", "decode", "detection_loss", "shapes_detector"]

Maps = dict[str, torch.Tensor]


def _conv(inputs: int, outputs: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=dilation, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class ShapesDetector(nn.Module):
    """``forward(image) -> {"obj": (B,1,h,w), "cls": (B,C,h,w), "box": (B,4,h,w)}``."""

    stride = 2

    def __init__(self, num_classes: int = 3, width: int = 32, conf: float = 0.25) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conf = conf  # the predict step's lowest score (Ultralytics' conf=0.25)
        self.backbone = nn.Sequential(
            _conv(3, width // 2), _conv(width // 2, width, stride=self.stride),
            _conv(width, width), _conv(width, width, dilation=2),
            _conv(width, width, dilation=2))
        self.obj = nn.Conv2d(width, 1, 1)
        self.cls = nn.Conv2d(width, num_classes, 1)
        self.box = nn.Conv2d(width, 4, 1)
        nn.init.constant_(self.obj.bias, -2.0)  # type: ignore[arg-type]  # few cells hold a centre: start low

    def forward(self, image: torch.Tensor) -> Maps:
        features = self.backbone(image)
        return {"obj": self.obj(features), "cls": self.cls(features), "box": self.box(features)}

    # --- Lightning's steps: what the engine calls ----------------------------------------------
    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        images, targets = split_batch(batch)
        return detection_loss(self(images), targets, self.stride)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.training_step(batch)

    def predict_step(self, batch: Any, *, conf: float | None = None) -> dict[str, Any]:
        """``{"boxes": [Boxes per image]}``: boxes scoring at least ``conf`` (default
        ``self.conf``), which the Predictor puts in ``result.boxes``."""
        images, _ = split_batch(batch)
        maps = self(images)
        return {"boxes": decode(maps, self.stride, min_score=self.conf if conf is None else conf),
                "maps": maps}


def shapes_detector(num_classes: int = 3, width: int = 32) -> ShapesDetector:
    """The detector for the shapes data (the CLI's ``model=shapes_detector``)."""
    return ShapesDetector(num_classes, width)


def split_batch(batch: Any) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]] | None]:
    """``(images, targets)`` from a dict batch (``image``, ``boxes``, ``labels``), a tuple
    ``(images, [{"boxes", "labels"}...])``, or images alone (prediction)."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        if "image" not in batch:
            raise ValueError(f"a detection dict batch needs an 'image' entry (and 'boxes', "
                             f"'labels' to train); got keys {sorted(batch)}")
        if "boxes" not in batch:
            return batch["image"], None
        return batch["image"], [{"boxes": boxes, "labels": labels}
                                for boxes, labels in zip(batch["boxes"], batch["labels"])]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0], (list(batch[1]) if len(batch) > 1 else None)
    raise TypeError(f"a detection batch is {{'image', 'boxes', 'labels'}}, (images, targets) "
                    f"or images; got {type(batch).__name__}")


def detection_loss(maps: Maps, targets: Sequence[Mapping[str, torch.Tensor]] | None,
                   stride: int) -> dict[str, torch.Tensor]:
    """The three named parts: ``obj`` (CenterNet's focal loss on a Gaussian-splatted centre
    map), ``cls`` (cross entropy at the centre cells) and ``box`` (L1 on offset and log size
    at the centre cells), each a mean over the batch's boxes."""
    if targets is None:
        raise ValueError("training a detector needs targets: batches with 'boxes' and "
                         "'labels' (hookline.detection.collate_dict)")
    obj = maps["obj"]
    batch, _, height, width = obj.shape
    device, dtype = obj.device, obj.dtype
    boxes = torch.cat([t["boxes"].reshape(-1, 4) for t in targets]).to(device, dtype) / stride
    labels = torch.cat([t["labels"].reshape(-1) for t in targets]).to(device)
    images = torch.cat([torch.full((len(t["labels"]),), i, dtype=torch.long)
                        for i, t in enumerate(targets)]).to(device)
    count = max(len(labels), 1)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    cols = centre[:, 0].long().clamp(0, width - 1)
    rows = centre[:, 1].long().clamp(0, height - 1)
    # one Gaussian per box around its centre cell; an image's map is their maximum
    sigma = (size.min(1).values / 6).clamp(min=0.5)[:, None, None]
    ys = torch.arange(height, device=device, dtype=dtype)[None, :, None]
    xs = torch.arange(width, device=device, dtype=dtype)[None, None, :]
    splats = torch.exp(-((xs - cols[:, None, None]) ** 2 + (ys - rows[:, None, None]) ** 2)
                       / (2 * sigma ** 2))
    heat = torch.zeros(batch, height * width, device=device, dtype=dtype).scatter_reduce(
        0, images[:, None].expand(-1, height * width), splats.flatten(1), "amax"
    ).view(batch, height, width)
    obj_loss = _focal(obj[:, 0], heat) / count
    if not len(labels):
        zero = maps["cls"].sum() * 0 + maps["box"].sum() * 0
        return {"box": zero, "cls": zero, "obj": obj_loss}
    cls_logits = maps["cls"].permute(0, 2, 3, 1)[images, rows, cols]
    box_pred = maps["box"].permute(0, 2, 3, 1)[images, rows, cols]
    box_target = torch.cat([centre - torch.stack([cols, rows], 1).to(dtype), size.log()], 1)
    return {"box": F.l1_loss(box_pred, box_target),
            "cls": F.cross_entropy(cls_logits, labels),
            "obj": obj_loss}


def _focal(logits: torch.Tensor, heat: torch.Tensor, alpha: float = 2.0,
           beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed (cells near a centre count less)."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1).float()  # the centre cells (their splat peaks at exactly 1)
    pos = -(F.logsigmoid(logits)) * (1 - prob) ** alpha * positive
    neg = -(F.logsigmoid(-logits)) * prob ** alpha * (1 - heat) ** beta * (1 - positive)
    return (pos + neg).sum()


@torch.no_grad()
def decode(maps: Maps, stride: int, *, top_k: int = 20,
           min_score: float = 0.25) -> list[Boxes]:
    """One ``Boxes`` per image (pixels), best first: the ``top_k`` local maxima of the
    centre map scoring at least ``min_score`` (``obj * p(class)``)."""
    obj = torch.sigmoid(maps["obj"][:, 0].float())
    peaks = obj * (F.max_pool2d(obj[:, None], 3, stride=1, padding=1)[:, 0] == obj)
    probs = torch.softmax(maps["cls"].float(), dim=1)
    box = maps["box"].float()
    batch, height, width = obj.shape
    results = []
    for i in range(batch):
        scores, cells = peaks[i].flatten().topk(min(top_k, height * width))
        rows, cols = cells // width, cells % width
        conf, classes = probs[i, :, rows, cols].max(0)
        score = scores * conf
        keep = score >= min_score
        rows, cols, score, classes = rows[keep], cols[keep], score[keep], classes[keep]
        dx, dy, lw, lh = box[i, :, rows, cols]
        cx, cy = (cols + dx) * stride, (rows + dy) * stride
        w, h = lw.exp() * stride, lh.exp() * stride
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
        order = score.argsort(descending=True)
        results.append(Boxes.from_parts(xyxy[order], score[order], classes[order]))
    return results

"""Detected boxes of one image, with Ultralytics' reading: ``r.boxes.xyxy``, ``.cls``, ``.conf``.

A predict step "returns boxes" when it returns a dict with a ``boxes`` entry: one entry per
image, each a ``Boxes`` or an ``(N, 6)`` tensor of rows ``x1, y1, x2, y2, conf, cls``. The
Predictor then gives one ``Result`` per image with ``result.boxes`` set (see
``hookline.engine.predictor``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["Boxes", "as_boxes", "padded_detections"]


class Boxes:
    """``N`` boxes as an ``(N, 6)`` array of ``x1, y1, x2, y2, conf, cls`` (pixels).

    ``xyxy``, ``xywh`` (centre, width, height), ``conf`` and ``cls`` are views of it;
    ``class_id in boxes.cls`` works as in Ultralytics. ``len(boxes)``, ``boxes[i]``,
    iteration (one ``Boxes`` per box), ``.cpu()`` and ``.numpy()`` behave like theirs.
    """

    __slots__ = ("data",)

    def __init__(self, data: torch.Tensor | np.ndarray) -> None:
        if data.ndim == 1:
            data = data[None]
        if data.ndim != 2 or data.shape[-1] != 6:
            raise ValueError(f"Boxes takes an (N, 6) array of x1, y1, x2, y2, conf, cls; got "
                             f"shape {tuple(data.shape)}")
        self.data = data

    @classmethod
    def from_parts(cls, xyxy: torch.Tensor, conf: torch.Tensor, cls_ids: torch.Tensor) -> Boxes:
        """Boxes from ``(N, 4)`` corners, ``(N,)`` confidences and ``(N,)`` class ids."""
        return cls(torch.cat([xyxy.float(), conf.float()[:, None],
                              cls_ids.float()[:, None]], dim=1))

    @property
    def xyxy(self) -> Any:
        """Corners ``x1, y1, x2, y2``, shape ``(N, 4)``."""
        return self.data[:, :4]

    @property
    def xywh(self) -> Any:
        """Centre ``x, y``, width and height, shape ``(N, 4)``."""
        corners: Any = self.data[:, :4]
        centre, size = (corners[:, :2] + corners[:, 2:]) / 2, corners[:, 2:] - corners[:, :2]
        if isinstance(corners, torch.Tensor):
            return torch.cat([centre, size], 1)
        return np.concatenate([centre, size], 1)

    @property
    def conf(self) -> Any:
        """Each box's confidence, shape ``(N,)``."""
        return self.data[:, 4]

    @property
    def cls(self) -> Any:
        """Each box's class id (as floats, like Ultralytics'), shape ``(N,)``."""
        return self.data[:, 5]

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: Any) -> Boxes:
        return Boxes(self.data[index])

    def __iter__(self) -> Iterator[Boxes]:
        return (self[i] for i in range(len(self)))

    def cpu(self) -> Boxes:
        """The boxes on the CPU."""
        return Boxes(self.data.cpu()) if isinstance(self.data, torch.Tensor) else self

    def numpy(self) -> Boxes:
        """The boxes as numpy arrays."""
        if isinstance(self.data, torch.Tensor):
            return Boxes(self.data.detach().cpu().numpy())
        return self

    def __repr__(self) -> str:
        return f"Boxes(n={len(self)}, cls={self.cls.tolist()})"


def as_boxes(value: Any) -> Boxes:
    """One image's boxes from a ``Boxes`` or an ``(N, 6)`` tensor or array."""
    if isinstance(value, Boxes):
        return value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if isinstance(value, torch.Tensor):
            value = value.detach()
        return Boxes(value)
    raise TypeError(f"a predict step's 'boxes' entry holds one item per image: a Boxes or an "
                    f"(N, 6) tensor of x1, y1, x2, y2, conf, cls; got {type(value).__name__}")


def boxes_rows(boxes: Sequence[Any]) -> list[Boxes]:
    """Each image's ``Boxes`` (on the CPU) from a predict step's ``boxes`` entry."""
    return [as_boxes(item).cpu() for item in boxes]


def padded_detections(per_image: Sequence[Boxes]) -> dict[str, np.ndarray]:
    """Several images' boxes as fixed-size arrays, the layout KerasCV's detectors return
    from ``predict``: ``boxes`` ``(images, M, 4)`` corners x1, y1, x2, y2, ``confidence``
    ``(images, M)``, ``classes`` ``(images, M)`` integers and ``num_detections`` ``(images,)``,
    where M is the most boxes any image has; an image's entries past its own count are -1."""
    most = max((len(boxes) for boxes in per_image), default=0)
    images = len(per_image)
    corners = np.full((images, most, 4), -1.0, dtype=np.float32)
    confidence = np.full((images, most), -1.0, dtype=np.float32)
    classes = np.full((images, most), -1, dtype=np.int64)
    counts = np.zeros(images, dtype=np.int64)
    for i, boxes in enumerate(per_image):
        rows = np.asarray(boxes.numpy().data, dtype=np.float32)
        found = counts[i] = len(rows)
        corners[i, :found], confidence[i, :found] = rows[:, :4], rows[:, 4]
        classes[i, :found] = rows[:, 5].round().astype(np.int64)
    return {"boxes": corners, "confidence": confidence, "classes": classes,
            "num_detections": counts}

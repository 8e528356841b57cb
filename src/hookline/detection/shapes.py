"""A synthetic detection data set made in code: squares, circles and triangles with boxes.

Each image (``size`` x ``size``, 3 channels, values in [0, 1]) holds 1 to ``max_objects``
filled shapes of random colour and size that do not overlap, on a dark noisy background. A
box is the tight ``x1, y1, x2, y2`` (pixels, x2/y2 exclusive) of the shape's pixels; classes
are ``CLASSES``' indices. Generation is seeded, so a data set is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["CLASSES", "ShapesDataset", "collate_dict", "collate_tuple", "load_shapes_data"]

CLASSES = ("square", "circle", "triangle")
Target = dict[str, torch.Tensor]


class ShapesDataset(Dataset[tuple[torch.Tensor, Target]]):
    """``count`` images; item ``i`` is ``(image, {"boxes": (k, 4) float, "labels": (k,)})``."""

    def __init__(self, count: int = 1000, *, size: int = 32, max_objects: int = 3,
                 min_side: int = 8, max_side: int = 14, seed: int = 0) -> None:
        if count < 1 or max_objects < 1 or not 3 <= min_side <= max_side < size:
            raise ValueError(f"ShapesDataset needs count >= 1, max_objects >= 1 and "
                             f"3 <= min_side <= max_side < size; got count={count}, "
                             f"max_objects={max_objects}, sides {min_side}..{max_side}, "
                             f"size={size}")
        self.size = size
        rng = np.random.default_rng(seed)
        items = [_draw_image(rng, size, max_objects, min_side, max_side) for _ in range(count)]
        self.images = torch.from_numpy(np.stack([image for image, _, _ in items]))
        self.targets = [{"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}
                        for _, boxes, labels in items]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.images[index], self.targets[index]


def _draw_image(rng: np.random.Generator, size: int, max_objects: int, min_side: int,
                max_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = rng.uniform(0.0, 0.25, (3, size, size)).astype(np.float32)
    taken = np.zeros((size, size), dtype=bool)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):  # find a free place, else give up on this object
            side = int(rng.integers(min_side, max_side + 1))
            x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
            if not taken[max(0, y - 1):y + side + 1, max(0, x - 1):x + side + 1].any():
                break
        else:
            continue
        label = int(rng.integers(len(CLASSES)))
        mask = _mask(label, side)
        full = np.zeros((size, size), dtype=bool)
        full[y:y + side, x:x + side] = mask
        taken |= full
        colour = rng.uniform(0.5, 1.0, 3).astype(np.float32)
        image[:, full] = colour[:, None]
        rows, cols = np.nonzero(full)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        labels.append(label)
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _mask(label: int, side: int) -> np.ndarray:
    """The filled shape in a ``side`` x ``side`` square."""
    ys, xs = np.mgrid[0:side, 0:side] + 0.5
    if CLASSES[label] == "square":
        return np.ones((side, side), dtype=bool)
    if CLASSES[label] == "circle":
        radius = side / 2
        return (xs - radius) ** 2 + (ys - radius) ** 2 <= radius ** 2
    return np.abs(xs - side / 2) <= ys / 2  # a triangle, apex up: wider row by row


def collate_dict(items: Sequence[tuple[torch.Tensor, Target]]) -> dict[str, Any]:
    """A dict batch: ``{"image": (B, 3, H, W), "boxes": [(k, 4)...], "labels": [(k,)...]}``
    (a list per image: images hold different numbers of boxes)."""
    return {"image": torch.stack([image for image, _ in items]),
            "boxes": [target["boxes"] for _, target in items],
            "labels": [target["labels"] for _, target in items]}


def collate_tuple(items: Sequence[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor,
                                                                          list[Target]]:
    """A tuple batch: ``(images, [{"boxes": ..., "labels": ...}, ...])`` (torchvision's)."""
    return torch.stack([image for image, _ in items]), [target for _, target in items]


def load_shapes_data(val_fraction: float = 0.2, seed: int = 0, *, count: int = 2000,
                     batch_size: int = 32, size: int = 32,
                     dict_batches: bool = True) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """``(train_loader, val_loader)`` of the shapes data set (the CLI's ``data=shapes``)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    val_count = max(1, round(count * val_fraction))
    train = ShapesDataset(count - val_count, size=size, seed=seed)
    val = ShapesDataset(val_count, size=size, seed=seed + 1)
    collate = collate_dict if dict_batches else collate_tuple
    # the training order comes from torch's generator, which Trainer(seed=) seeds
    return (DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate),
            DataLoader(val, batch_size=batch_size, shuffle=False, collate_fn=collate))

"""mAP of a detector on a labelled data set, computed by pycocotools' COCOeval (the reference
implementation; ``pip install 'hookline[detection]'``), never by hand."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hookline.detection.model import split_batch

__all__ = ["coco_map"]


def coco_map(model: nn.Module, batches: Iterable[Any], *, num_classes: int = 3,
             device: str | torch.device = "cpu", conf: float = 0.001) -> dict[str, float]:
    """``{"map50": mAP@0.5, "map": mAP@0.5:0.95}`` of ``model`` over labelled ``batches``
    (e.g. the validation DataLoader). The boxes come from ``model.predict_step(images,
    conf=conf)``; as in COCO's own evaluation, low-scoring boxes are kept (``conf``)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError("coco_map needs pycocotools: pip install 'hookline[detection]'") \
            from error
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    was_training = model.training
    model.eval().to(device)
    try:
        for batch in batches:
            inputs, targets = split_batch(batch)
            if targets is None:
                raise ValueError("coco_map needs labelled batches (boxes and labels)")
            with torch.no_grad():
                found = model.predict_step(inputs.to(device), conf=conf)["boxes"]  # type: ignore[operator]
            for target, boxes in zip(targets, found):
                image_id = len(images) + 1
                images.append({"id": image_id})
                for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
                    annotations.append(_record(len(annotations) + 1, image_id, box,
                                               int(label), area=True))
                for row in boxes.cpu().data.tolist():
                    detections.append({**_record(0, image_id, row[:4], int(row[5])),
                                       "score": row[4]})
    finally:
        model.train(was_training)
    truth = COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": c + 1} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints its progress
        truth.createIndex()
        if not detections:
            return {"map50": 0.0, "map": 0.0}
        result = truth.loadRes(detections)
        evaluation = COCOeval(truth, result, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map50": float(evaluation.stats[1]), "map": float(evaluation.stats[0])}


def _record(record_id: int, image_id: int, xyxy: list[float], label: int, *,
            area: bool = False) -> dict[str, Any]:
    x1, y1, x2, y2 = xyxy
    record: dict[str, Any] = {"image_id": image_id, "category_id": label + 1,
                              "bbox": [x1, y1, x2 - x1, y2 - y1]}
    if area:
        record.update(id=record_id, area=(x2 - x1) * (y2 - y1), iscrowd=0)
    return record

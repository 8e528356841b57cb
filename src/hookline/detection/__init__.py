"""Object detection on hookline: a small CenterNet-style detector, a synthetic shapes data
set, and mAP by COCOeval. See docs/detection.md."""

from hookline.boxes import Boxes
from hookline.detection.evaluate import coco_map
from hookline.detection.model import ShapesDetector, decode, detection_loss, shapes_detector
from hookline.detection.shapes import (
    CLASSES,
    ShapesDataset,
    collate_dict,
    collate_tuple,
    load_shapes_data,
)

__all__ = ["CLASSES", "Boxes", "ShapesDataset", "ShapesDetector", "coco_map", "collate_dict",
           "collate_tuple", "decode", "detection_loss", "load_shapes_data", "shapes_detector"]

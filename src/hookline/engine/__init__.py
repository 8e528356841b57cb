"""The engines: Trainer, Validator, Predictor and Exporter over one shared base."""

from hookline.engine.base import Engine
from hookline.engine.exporter import EXPORT_FORMATS, Exporter
from hookline.engine.predictor import Predictor, Result
from hookline.engine.trainer import Trainer
from hookline.engine.validator import Validator

__all__ = ["EXPORT_FORMATS", "Engine", "Exporter", "Predictor", "Result", "Trainer", "Validator"]

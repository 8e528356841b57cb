"""hookline: a callback-driven PyTorch training engine.

Train, validate, predict and export are streams of named events (``hookline.events``); every
optional behaviour is a callback. Three doors: ``Trainer`` (native), ``Model`` (Keras-style) and
the ``hookline`` command line.
"""

from hookline.architecture import serializable
from hookline.callback import Callback
from hookline.callback_list import CallbackList, filtered
from hookline.callbacks.history import History
from hookline.callbacks.lambda_callback import LambdaCallback
from hookline.engine import EXPORT_FORMATS, Exporter, Predictor, Result, Trainer, Validator
from hookline.engine.base import Terminated
from hookline.events import EVENT_NAMES, EVENTS
from hookline.keras import Model
from hookline.saving import load_model

__version__ = "0.1.0"

__all__ = [
    "EVENTS",
    "EVENT_NAMES",
    "EXPORT_FORMATS",
    "Callback",
    "CallbackList",
    "Exporter",
    "History",
    "LambdaCallback",
    "Model",
    "Predictor",
    "Result",
    "Terminated",
    "Trainer",
    "Validator",
    "__version__",
    "filtered",
    "load_model",
    "serializable",
]

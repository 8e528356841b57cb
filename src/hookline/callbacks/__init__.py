"""Built-in callbacks. Each is one small file using only the public callback API."""

from hookline.callbacks.backup_and_restore import BackupAndRestore
from hookline.callbacks.csv_logger import CSVLogger
from hookline.callbacks.device_stats_monitor import DeviceStatsMonitor
from hookline.callbacks.early_stopping import EarlyStopping
from hookline.callbacks.empty_cache import EmptyCache
from hookline.callbacks.history import History
from hookline.callbacks.lambda_callback import LambdaCallback
from hookline.callbacks.lr_monitor import LearningRateMonitor
from hookline.callbacks.lr_scheduler import (
    LearningRateScheduler,
    LRSchedulerCallback,
    TorchScheduler,
    one_cycle,
    warmup_cosine,
)
from hookline.callbacks.model_checkpoint import ModelCheckpoint
from hookline.callbacks.model_summary import ModelSummary
from hookline.callbacks.on_exception_checkpoint import OnExceptionCheckpoint
from hookline.callbacks.progress_bar import ProgressBar
from hookline.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from hookline.callbacks.remote_monitor import RemoteMonitor
from hookline.callbacks.terminate_on_nan import TerminateOnNaN
from hookline.callbacks.throughput_monitor import ThroughputMonitor
from hookline.callbacks.timer import Timer

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "DeviceStatsMonitor",
    "EarlyStopping",
    "EmptyCache",
    "History",
    "LRSchedulerCallback",
    "LambdaCallback",
    "LearningRateMonitor",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
    "RemoteMonitor",
    "TerminateOnNaN",
    "ThroughputMonitor",
    "Timer",
    "TorchScheduler",
    "one_cycle",
    "warmup_cosine",
]

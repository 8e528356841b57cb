"""Built-in callbacks. Each is one small file using only the public callback API."""

from hookline.callbacks.history import History
from hookline.callbacks.lambda_callback import LambdaCallback
from hookline.callbacks.progress_bar import ProgressBar

__all__ = ["History", "LambdaCallback", "ProgressBar"]

"""TensorBoard: scalars per step and per epoch, optional weight histograms and the graph."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hookline.callback import Callback
from hookline.loggers._optional import require
from hookline.loggers._val_steps import at_step
from hookline.plain_number import plain_number
from hookline.user_warning import warn

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Write TensorBoard event files with ``torch.utils.tensorboard.SummaryWriter``.

    Args:
        log_dir: the folder of the event files (default: ``save_dir/"tensorboard"`` when the
            trainer has a save_dir, else ``"logs"`` as in Keras).
        log_every_n_steps: every n optimizer steps write ``step/loss`` (the current batch's
            loss; with named loss parts also ``step/<part>``) and ``step/lr`` (first param
            group: the rate that step used, before a per-step schedule moved it) at that
            step; only then is the loss
            read, so other steps stay free of host-device syncs. 0 turns it off.
        histogram_freq: every n epochs (from epoch 0) write a histogram of every parameter
            (``weights/<name>``); 0 turns it off.
        write_graph: trace the model once, on the first epoch's last batch (in eval mode, no
            gradients), and write its graph. Off by default: tracing runs an extra forward
            pass and fails on models ``torch.jit.trace`` cannot follow (this warns).

    Every epoch, each numeric value of ``trainer.metrics`` is written as ``epoch/<name>`` at
    step ``trainer.epoch`` (0-based): the loss, train metrics, ``val_*``, and ``lr`` or any
    value other callbacks add. With ``Trainer(val_check_interval=...)`` every validation
    (inside the epoch, at ``on_mid_epoch_val_end``, and at its end) is also written as
    ``step/val_*`` at ``trainer.step``, Lightning's global step. The writer is flushed at each epoch's end and closed when
    training ends. ``on_error="warn"``: a failing logger never ends a run.

    A resumed run continues the same folder: the values the interrupted run logged after its
    checkpoint (an epoch trained again) are dropped from the earlier event files first, so
    every step and epoch appears once (``hookline.loggers.tensorboard_rewind``).

    Example::

        from hookline.loggers import TensorBoard
        Trainer(model, loss="cross_entropy", train_data=(x, y), val_data=(xv, yv), epochs=5,
                callbacks=[TensorBoard("runs/exp1", log_every_n_steps=10)]).fit()
        # then: tensorboard --logdir runs
    """

    order = 80  # after the callbacks that add metrics (lr, throughput)
    on_error = "warn"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, log_dir: str | os.PathLike | None = None, *, log_every_n_steps: int = 50,
                 histogram_freq: int = 0, write_graph: bool = False) -> None:
        for name, value in (("log_every_n_steps", log_every_n_steps),
                            ("histogram_freq", histogram_freq)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TensorBoard({name}=...) must be an integer >= 0 (0 turns "
                                 f"it off), got {value!r}")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.log_every_n_steps = log_every_n_steps
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.writer: Any = None
        self.run_dir: Path | None = None  # where the current (or last) run wrote
        self._last_step = 0
        self._lr = 0.0
        self._graph_done = False

    def hookline_handlers(self) -> dict[str, Callable[[Any], None]]:
        handlers: dict[str, Callable[[Any], None]] = {
            "on_train_start": self._open, "on_train_epoch_end": self._graph,
            "on_fit_epoch_end": self._epoch, "on_mid_epoch_val_end": self._val_step,
            "on_train_end": self._close,
            "teardown": self._close}
        if self.log_every_n_steps:
            handlers["on_train_batch_start"] = self._note_lr
            handlers["on_train_batch_end"] = self._step
        if not self.write_graph:
            del handlers["on_train_epoch_end"]
        return handlers

    def _open(self, trainer: Any) -> None:
        self._close(trainer)
        module = require("torch.utils.tensorboard", extra="tensorboard",
                         feature="the TensorBoard logger")
        folder = self.log_dir
        if folder is None:
            save_dir = getattr(trainer, "save_dir", None)
            folder = Path(save_dir) / "tensorboard" if save_dir is not None else Path("logs")
        self.run_dir = folder
        if getattr(trainer, "resumed", False) and folder.is_dir():
            # what was logged after the checkpoint is trained (and logged) again
            from hookline.loggers.tensorboard_rewind import (
                rewind_event_files,
                wait_for_a_later_second,
            )
            rewind_event_files(folder, step=trainer.step, epoch=trainer.start_epoch)
            wait_for_a_later_second(folder)  # so the new file sorts after the earlier ones
        self.writer = module.SummaryWriter(log_dir=str(folder))
        self._last_step = trainer.step
        self._graph_done = False

    def _note_lr(self, trainer: Any) -> None:
        """The rate this batch's step will use: a per-step schedule changes it right after
        the step (``on_params_update``), before ``on_train_batch_end``."""
        self._lr = trainer.optimizer.param_groups[0]["lr"]

    def _step(self, trainer: Any) -> None:
        step = trainer.step
        if step == self._last_step or step % self.log_every_n_steps or self.writer is None:
            return
        self._last_step = step
        parts = getattr(trainer, "loss_parts", None)
        if parts:  # the total and each named part, read with one device copy
            values = torch.stack([trainer.loss.detach(), *(p.detach() for p in parts.values())])
            loss, *part_values = values.tolist()
            for name, value in zip(parts, part_values):
                self.writer.add_scalar(f"step/{name}", value, step)
        else:
            loss = float(trainer.loss.detach())  # the one host-device sync, every n steps
        self.writer.add_scalar("step/loss", loss, step)
        self.writer.add_scalar("step/lr", self._lr, step)

    def _val_step(self, trainer: Any) -> None:
        """With ``val_check_interval``: each validation's ``val_*`` as ``step/val_*`` at
        ``trainer.step`` (the epoch-end one too), beside ``epoch/val_*`` at the epoch."""
        if self.writer is None:
            return
        step = trainer.step
        for name, value in at_step(trainer).items():
            self.writer.add_scalar(name, value, step)

    def _graph(self, trainer: Any) -> None:
        if self._graph_done or self.writer is None or trainer.batch is None:
            return
        self._graph_done = True
        model = trainer.model
        batch = trainer.batch
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(inputs, torch.Tensor):
            inputs = inputs[:1].to(getattr(trainer, "device", "cpu"))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # jit.trace's own notice
                self.writer.add_graph(model, inputs)
        except Exception as error:  # noqa: BLE001 - a graph is a nicety; the scalars matter
            warn(f"TensorBoard: could not trace the model to write its graph "
                 f"({type(error).__name__}: {error}); scalars are still logged. "
                 f"Pass write_graph=False to skip it", RuntimeWarning)
        finally:
            model.train(was_training)

    def _epoch(self, trainer: Any) -> None:
        if self.writer is None:
            return
        epoch = trainer.epoch
        for name, value in trainer.metrics.items():
            number = plain_number(value)
            if number is not None:
                self.writer.add_scalar(f"epoch/{name}", number, epoch)
        self._val_step(trainer)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for name, parameter in trainer.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}",
                                          parameter.detach().float().cpu(), epoch)
        self.writer.flush()

    def _close(self, engine: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

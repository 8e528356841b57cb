"""The Callback base class: one typed no-op hook per event.

Subclass it and override the hooks you need; only overridden hooks are dispatched, so an unused
hook costs nothing. Keras' names (``on_epoch_end``...) are accepted as aliases of hookline's events
(see ``hookline.events.ALIASES``) and receive the engine, not ``(epoch, logs)``: for Keras'
signatures use ``hookline.keras.Callback``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hookline.engine.base import Engine
    from hookline.engine.exporter import Exporter
    from hookline.engine.predictor import Predictor
    from hookline.engine.trainer import Trainer
    from hookline.engine.validator import Validator

__all__ = ["Callback", "ErrorPolicy"]

ErrorPolicy = Literal["raise", "warn", "disable"]


class Callback:
    """Base class for hookline callbacks.

    Class attributes a subclass (or an instance) may set:

    * ``order``: lower runs first at every event; ties keep registration order. Built-ins use
      negative orders for callbacks that produce metrics and positive ones for those that act
      on them, so the defaults compose correctly.
    * ``on_error``: ``"raise"`` (the run stops, the exception keeps its type and gains a note
      naming the callback and event), ``"warn"`` (warn once, keep training, count failures) or
      ``"disable"`` (warn, and stop calling this callback after ``max_failures`` failures).
    * ``rank_zero_only``: in a distributed run, call this callback on rank 0 only.

    Example::

        class PrintFitness(hookline.Callback):
            def on_fit_epoch_end(self, trainer):
                print(trainer.epoch, trainer.fitness)
    """

    order: int = 0
    on_error: ErrorPolicy = "raise"
    max_failures: int = 3
    rank_zero_only: bool = False

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint; subclasses add their configuration."""
        return type(self).__qualname__

    def state_dict(self) -> dict[str, Any]:
        """State to save in a checkpoint so a resumed run continues where this one stopped."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def check_state_dict(self, state: dict[str, Any], trainer: Trainer) -> None:
        """Refuse a resume whose saved ``state`` cannot continue in ``trainer``'s run: raise
        ``CheckpointMismatchError`` naming the problem and the fix. Called for every callback
        before anything of the checkpoint is loaded, so a refusal changes nothing."""

    def on_pretrain_routine_start(self, trainer: Trainer) -> None:
        """Fit begins, before the model is moved to its device and the optimizer is built."""

    def on_pretrain_routine_end(self, trainer: Trainer) -> None:
        """Set-up is done: model on its device, optimizer built, data wrapped."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Training begins, before the first epoch."""

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        """Each epoch, before its first batch."""

    def on_train_batch_start(self, trainer: Trainer) -> None:
        """Each training batch, before the forward pass."""

    def on_after_forward(self, trainer: Trainer) -> None:
        """Each training batch, right after model(x)."""

    def on_after_loss(self, trainer: Trainer) -> None:
        """Each training batch, after the loss is computed."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """Each training batch, after loss.backward()."""

    def optimizer_step(self, trainer: Trainer) -> None:
        """Each optimizer step (every `accumulate` batches), right before optimizer.step()."""

    def on_params_update(self, trainer: Trainer) -> None:
        """Each optimizer step, right after optimizer.step()."""

    def on_before_zero_grad(self, trainer: Trainer) -> None:
        """Each optimizer step, after on_params_update and before optimizer.zero_grad()."""

    def on_train_batch_end(self, trainer: Trainer) -> None:
        """Each training batch, after backward (and the step, when one was due)."""

    def on_mid_epoch_val_end(self, trainer: Trainer) -> None:
        """After a validation inside the epoch (``val_check_interval``), once that batch's
        ``on_train_batch_end`` is done; its ``val_*`` are in ``trainer.metrics``."""

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        """Each epoch, after its last batch and before validation."""

    def on_model_save(self, trainer: Trainer) -> None:
        """A checkpoint was written (by the engine's save_dir weights or a checkpoint callback)."""

    def on_fit_epoch_end(self, trainer: Trainer) -> None:
        """Each epoch, after validation and checkpointing."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Training completed or was stopped by a callback."""

    def on_val_start(self, validator: Validator) -> None:
        """Validation begins."""

    def on_val_batch_start(self, validator: Validator) -> None:
        """Each validation batch, before the forward pass."""

    def on_val_batch_end(self, validator: Validator) -> None:
        """Each validation batch, after the forward pass and loss."""

    def on_val_end(self, validator: Validator) -> None:
        """Validation is over and its metrics are computed."""

    def on_predict_start(self, predictor: Predictor) -> None:
        """Prediction begins."""

    def on_predict_batch_start(self, predictor: Predictor) -> None:
        """Each batch, before the forward pass."""

    def on_predict_postprocess_end(self, predictor: Predictor) -> None:
        """Each batch, after raw outputs became results and before they are saved."""

    def on_predict_batch_end(self, predictor: Predictor) -> None:
        """Each batch, after its results were saved."""

    def on_predict_end(self, predictor: Predictor) -> None:
        """Prediction is over."""

    def on_export_start(self, exporter: Exporter) -> None:
        """Export begins."""

    def on_export_end(self, exporter: Exporter) -> None:
        """The exported file is written (and checked)."""

    def on_exception(self, engine: Engine) -> None:
        """An exception (or KeyboardInterrupt) escapes a run."""

    def teardown(self, engine: Engine) -> None:
        """Every top-level run (fit, validate, predict, export) ends, whatever the reason."""

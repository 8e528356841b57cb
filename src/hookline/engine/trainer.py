"""The Trainer: the training loop as a stream of events.

Everything optional (stopping early, checkpoint policies, LR control, logging, progress) is a
callback; the loop below only trains, validates, keeps the run's state and fires events.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from hookline import distributed, options
from hookline.checkpoint import remove_stale_temps, save_weights
from hookline.data import ArrayBatches, Batches, as_batches, move_to
from hookline.engine.base import (
    SIGNALS,
    Engine,
    autocast,
    place_model,
    resolve_device,
    resolve_precision,
    sigterm_raises,
)
from hookline.engine.optimizers import OptimizerSet
from hookline.engine.schedule import Schedule, batch_limit
from hookline.engine.steps import (
    not_scalar,
    parts_changed,
    read_step_output,
    resolve_step,
    returned_none,
)
from hookline.engine.validator import Validator
from hookline.hook_checks import check_model_hooks
from hookline.metric_direction import direction
from hookline.metrics import MetricSet, own_copies, resolve_loss, resolve_metrics
from hookline.module_modes import frozen_in_eval
from hookline.objective import Objective, explain_loss_error
from hookline.rng import get_rng_state, set_rng_state
from hookline.run_state import Phase
from hookline.step_losses import RunningMeans, records_floats, stacked
from hookline.structure import Prediction, prediction_of, sample_count, unpack_batch
from hookline.user_warning import warn
from hookline.wrappers import unwrap

__all__ = ["Trainer"]

_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
}


class Trainer(Engine):
    """Train a PyTorch module, firing the events of ``hookline.events`` as it goes.

    Args:
        model: the ``nn.Module`` to train.
        optimizer: an optimizer instance, a factory ``f(params) -> optimizer`` or a name
            ("sgd", "adam", "adamw", "rmsprop", "adagrad") used with ``lr``; or a list or dict
            of optimizers (a GAN's), each stepped in turn (``hookline.engine.optimizers``).
        optimizer_frequencies: with several optimizers, a step every n batches for each.
        check_finite: stop with ``NonFiniteLossError`` at the first NaN or infinite loss,
            naming the epoch, the batch and the non-finite inputs, before its backward pass
            (it reads the loss every step: a host-device sync). ``detect_anomaly`` runs the
            fit under ``torch.autograd.set_detect_anomaly`` (slow; finds the op).
        loss: a name ("cross_entropy", "mse"...; it receives the model's prediction) or a
            callable ``loss(output, targets) -> scalar`` (it receives the output as the model
            returned it); None when the model returns its own loss (a Hugging Face model
            given ``labels``) or a custom step computes it.
        train_data / val_data: a DataLoader, an iterable of batches, or arrays (tensors or
            numpy) that hookline batches with ``batch_size``/``shuffle``: ``(x, y)``,
            ``(x, y, sample_weight)``, ``((a, b), y)``, ``({"a": a}, y)`` or a dict such as
            ``{"input_ids": ..., "labels": ...}`` (the rules: ``hookline.structure``).
        training_step / validation_step / predict_step: functions ``f(engine, batch)`` that
            replace the default step of a phase (see ``hookline.engine.steps``); a model that
            declares ``training_step(batch)`` (Lightning's way) or a Trainer subclass that
            overrides the method is used the same way.
        compile: True (or a dict of ``torch.compile`` options) to compile the model's forward
            for training and validation. A model compiled by you (``torch.compile(model)``) or
            wrapped in ``nn.DataParallel`` is trained through your wrapper, and checkpoints,
            weights and exports always hold the plain module's parameter names, so they load
            into a model wrapped or not; a ``DistributedDataParallel`` is replaced by the
            engine's own under torchrun (``hookline.wrappers``).
        automatic_optimization: False when the training step calls ``trainer.backward(loss)``
            and ``trainer.step_optimizer()`` itself (Lightning's manual optimization).
        target_key: the key of a dict batch that holds the targets (default: the first of
            labels, label, y, target, targets).
        prediction: which part of a structured output metrics receive: an index, a key or
            attribute name, or ``f(output) -> tensor`` (default: the tensor, a tuple's first
            element, ``logits``).
        weighted_metrics: metrics weighed by ``sample_weight`` (Keras' meaning; ``metrics``
            ignore the weights).
        check_val_every_n_epoch: validate after every n-th epoch, or after the listed
            1-based epochs (Keras' ``validation_freq``); the next options, with Lightning's
            names, are explained in ``hookline.engine.schedule``.
        val_check_interval: also validate every n training batches (at most an epoch's), or
            every such fraction of an epoch, in the epochs that validate; each such validation
            puts its ``val_*`` into ``metrics`` and fires ``on_mid_epoch_val_end`` after that
            batch's ``on_train_batch_end``.
        min_epochs: a stop asked for earlier waits until this many epochs are complete (a
            stop asked inside the epoch that completes them ends after that epoch).
        min_steps: likewise, in optimizer steps.
        max_steps: stop after this many optimizer steps; it wins over min_epochs and
            min_steps, as in Lightning (a hard limit, like ``epochs``).
        num_sanity_val_steps: validate this many batches before training (discarded).
        limit_train_batches: batches per epoch: a count or a fraction.
        limit_val_batches: batches per validation: a count or a fraction.
        limit_predict_batches: batches per prediction: a count or a fraction.
        fast_dev_run: one epoch (the one at ``initial_epoch``) of n batches (True: 1) of
            training and validation; 0 or False: off.
        epochs: epochs to train; ``initial_epoch`` (Keras) starts the count later.
        freeze: parameters left untrained (Ultralytics' option): an int freezes the first n
            top-level children; a list names parameter-name prefixes ("backbone",
            "0.weight") and indexes of top-level children (``[0, 2]``); an entry that
            matches nothing is an error naming the nearest names.
        callbacks: callback objects (``hookline.Callback``, Keras-style, filtered...): a list,
            one callback, or None.
        metrics: "auto" (accuracy for classification losses), a list of names, callables or
            torchmetrics metrics; computed on validation (and on training if ``train_metrics``,
            with a copy of each torchmetrics object, so the two never share a state).
            Logged under their ``name``, ``__name__`` or class name in snake case
            (``MulticlassAUROC`` -> ``multiclass_auroc``, ``val_multiclass_auroc``); a
            MetricCollection logs one value per key, a 1-d result (``average=None``) one per
            entry (``name_0``, ...); another result is refused at the first batch.
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:N", "mps" or a torch.device.
        precision: "32", "bf16" or "fp16" (autocast; fp16 adds a gradient scaler).
        accumulate: batches per optimizer step (gradient accumulation).
        clip_grad_norm / clip_grad_value: gradient clipping before each step, over the
            parameters that optimizer steps (a frozen backbone's gradients do not count).
        seed: seeds python, numpy and torch, and fixes the shuffle order of array data.
        save_dir: when set, weights/last.pt and weights/best.pt are written each epoch and
            ``on_model_save`` fires (Ultralytics' behaviour); None writes nothing.
        fitness: the metric whose rise means "better"; one whose name says it should fall
            (loss, error, mae, mse, perplexity: the rule of the monitors' ``mode="auto"``) is
            negated. Default val_accuracy when present, else -val_loss, else -loss.
        verbose: 0 silent, 1 progress bar (one line per epoch when not a terminal), 2 one line
            per epoch; read by the default progress callback.
        resume: continue a run from a full checkpoint, exactly (mid-epoch included): True (the
            newest under save_dir and the callbacks' checkpoint folders), a file, a folder, or
            a loaded checkpoint dict. See ``hookline.resume``.
        default_callbacks: add the defaults (History, progress) from
            ``hookline.callbacks.defaults``; False adds none.

    Example::

        trainer = hookline.Trainer(model, optimizer="adam", loss="cross_entropy",
                                   train_data=(x, y), val_data=(xv, yv), epochs=5)
        trainer.add_callback("on_fit_epoch_end", lambda t: print(t.epoch, t.fitness))
        trainer.fit()
    """

    def __init__(self, model: nn.Module, *, optimizer: Any = "adam", loss: Any = None,
                 train_data: Any, val_data: Any = None, epochs: int = 1, batch_size: int = 32,
                 shuffle: bool = True, lr: float = 1e-3, metrics: Any = "auto",
                 train_metrics: bool = False, callbacks: Any = (), default_callbacks: bool = True,
                 device: str | torch.device = "auto", precision: str = "32", accumulate: int = 1,
                 clip_grad_norm: float | None = None, clip_grad_value: float | None = None,
                 seed: int | None = None, steps_per_epoch: int | None = None,
                 initial_epoch: int = 0, freeze: int | Sequence[int | str] | None = None,
                 fitness: str | None = None, save_dir: str | Path | None = None,
                 verbose: int = 1, profile: bool = False, resume: Any = None,
                 training_step: Callable[..., Any] | None = None,
                 validation_step: Callable[..., Any] | None = None,
                 predict_step: Callable[..., Any] | None = None,
                 automatic_optimization: bool = True, target_key: str | None = None,
                 prediction: Prediction = None, weighted_metrics: Any = None,
                 check_val_every_n_epoch: int | Sequence[int] = 1,
                 val_check_interval: float | None = None, min_epochs: int = 0,
                 min_steps: int = 0, max_steps: int | None = None,
                 num_sanity_val_steps: int = 0, limit_train_batches: float | None = None,
                 limit_val_batches: float | None = None,
                 limit_predict_batches: float | None = None,
                 fast_dev_run: bool | int = False,
                 compile: bool | dict[str, Any] = False,
                 optimizer_frequencies: Sequence[int] | dict[str, int] | None = None,
                 check_finite: bool = False, detect_anomaly: bool = False) -> None:
        # on/off options as bools, "False" from a config file too (hookline.options)
        (shuffle, train_metrics, default_callbacks, profile, automatic_optimization,
         check_finite, detect_anomaly) = options.check_trainer_switches(
            shuffle=shuffle, train_metrics=train_metrics, default_callbacks=default_callbacks,
            profile=profile, automatic_optimization=automatic_optimization,
            check_finite=check_finite, detect_anomaly=detect_anomaly).values()
        if not isinstance(compile, dict):  # True/False, or a dict of torch.compile options
            compile = options.to_bool("compile", compile)
        if isinstance(fast_dev_run, str):  # "true"/"false"; a number of batches is an int
            fast_dev_run = options.to_bool("fast_dev_run", fast_dev_run)
        super().__init__(callbacks, profile=profile)
        wrapped = unwrap(model) if isinstance(model, nn.Module) else None
        model = wrapped.plain if wrapped is not None else model
        self.schedule = Schedule.build(
            check_val_every_n_epoch=check_val_every_n_epoch,
            val_check_interval=val_check_interval, min_epochs=min_epochs, min_steps=min_steps,
            max_steps=max_steps, num_sanity_val_steps=num_sanity_val_steps,
            limit_train_batches=limit_train_batches, limit_val_batches=limit_val_batches,
            limit_predict_batches=limit_predict_batches, fast_dev_run=fast_dev_run)
        if fast_dev_run:
            save_dir = None  # Lightning's fast_dev_run writes no weights
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        # option checks (hookline.options): numbers checked, number strings converted
        (epochs, batch_size, lr, accumulate, clip_grad_norm, clip_grad_value, steps_per_epoch,
         initial_epoch, seed) = options.check_trainer_numbers(
            epochs=epochs, batch_size=batch_size, lr=lr, accumulate=accumulate,
            clip_grad_norm=clip_grad_norm, clip_grad_value=clip_grad_value,
            steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch, seed=seed).values()
        if fast_dev_run:
            epochs = initial_epoch + 1  # one epoch: `epochs` is the last index + 1 (Keras')
        options.check_save_dir(save_dir)
        if save_dir is not None:  # temp files of weights/*.pt writes a killed run left
            remove_stale_temps(Path(save_dir) / "weights")
        if isinstance(verbose, bool):
            verbose = int(verbose)  # Keras' rule: True is 1 (a progress bar), False is 0
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.model = model
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision)
        self.loss_fn = resolve_loss(loss) if loss is not None else None
        self.objective = Objective(self.loss_fn, by_name=isinstance(loss, str),
                                   prediction=prediction)
        metric_list = resolve_metrics(metrics, self.loss_fn)
        weighted_list = resolve_metrics(weighted_metrics, self.loss_fn)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            seeded = False
        else:
            seeded = True
        for key, value in {
                "epochs": epochs, "batch_size": batch_size, "shuffle": shuffle, "lr": lr,
                "device": self.device, "precision": self.precision, "accumulate": accumulate,
                "clip_grad_norm": clip_grad_norm, "clip_grad_value": clip_grad_value,
                "seed": seed, "seeded": seeded, "steps_per_epoch": steps_per_epoch,
                "initial_epoch": initial_epoch, "freeze": freeze, "fitness": fitness,
                "save_dir": Path(save_dir) if save_dir is not None else None,
                "verbose": verbose, "resume": resume, "train_metrics": train_metrics,
                "metrics": [name for name, _ in metric_list], "target_key": target_key,
                "prediction": prediction,
                "automatic_optimization": automatic_optimization,
                "fast_dev_run": fast_dev_run, "compile": compile,
                "check_finite": check_finite, "detect_anomaly": detect_anomaly}.items():
            setattr(self.args, key, value)
        batches = as_batches(train_data, name="train_data", batch_size=batch_size,
                             shuffle=shuffle, seed=seed)
        if batches is None:
            raise ValueError("train_data is required: arrays (x, y), a DataLoader or an "
                             "iterable of (x, y) batches")
        self.train_data: Batches = batches
        limit = batch_limit(self.schedule.limit_train_batches, batches, "limit_train_batches")
        if limit is not None:
            self.args.steps_per_epoch = limit if steps_per_epoch is None else min(
                limit, steps_per_epoch)
        self._given_steps = {"training_step": training_step,
                             "validation_step": validation_step, "predict_step": predict_step}
        self.validator = Validator(model, data=val_data, loss=self.objective,
                                   metrics=metric_list, weighted_metrics=weighted_list,
                                   batch_size=batch_size, device=self.device,
                                   precision=self.precision, callbacks=self.callbacks,
                                   trainer=self, target_key=target_key,
                                   prediction=prediction,
                                   limit_batches=self.schedule.limit_val_batches)
        self.train_metric_set = MetricSet(own_copies(metric_list), own_copies(weighted_list)) \
            if train_metrics else None
        _apply_freeze(model, freeze)
        check_model_hooks(model, optimizer=optimizer)
        self.optimizer_set = OptimizerSet.build(
            optimizer, lambda spec: self._build_optimizer(spec, lr), optimizer_frequencies)
        if accumulate > 1 and not automatic_optimization:
            raise ValueError(f"accumulate={accumulate} needs automatic_optimization=True: with "
                             f"a manual step, the step decides when to call "
                             f"trainer.step_optimizer(); accumulate there (e.g. every "
                             f"{accumulate}th batch) and leave accumulate=1")
        if not automatic_optimization and not resolve_step(
                self, "training_step", training_step, Trainer)[1]:
            raise ValueError("automatic_optimization=False needs a training step of your own "
                             "that calls trainer.backward(loss) and trainer.step_optimizer(): "
                             "the default step only computes the loss, so nothing would "
                             "train. Pass training_step=fn (fn(trainer, batch)), give the "
                             "model a training_step method, or leave automatic_optimization "
                             "at True")
        if accumulate > 1 and max(self.optimizer_set.frequencies) > 1:
            raise ValueError("optimizer_frequencies and accumulate > 1 do not combine: an "
                             "optimizer that skips batches has nothing to accumulate over them")
        self.optimizers: dict[str, torch.optim.Optimizer] = self.optimizer_set.by_name
        self.optimizer = self.optimizers[self.optimizer_set.names[0]]
        self.optimizer_name, self.optimizer_index = self.optimizer_set.names[0], 0
        self._scaler_pending = False
        self.scaler: Any = None
        # run state: what callbacks read (names follow Ultralytics and Keras)
        self.epochs = epochs
        self.epoch = initial_epoch
        self.start_epoch = initial_epoch
        self.step = 0  # optimizer steps taken
        self.batch_i = 0
        self.batch: Any = None
        self.outputs: Any = None  # what the model returned for this batch
        self.preds: Any = None  # the prediction metrics receive (hookline.structure)
        self.target: Any = None
        self.sample_weight: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None  # this batch's total loss (in the graph)
        self.loss_parts: dict[str, torch.Tensor] | None = None  # its named parts, if any
        self._part_items: torch.Tensor | None = None  # this step's parts, detached
        self.loss_names = ["loss"]
        self.metrics: dict[str, float] = {}
        self.fitness: float | None = None
        self.best_fitness: float | None = None
        self.stop = False
        self.stop_reason = ""
        self.skip_rest_of_epoch = False
        # True on an epoch whose end skips validation (check_val_every_n_epoch): monitors of
        # val_* metrics skip it
        self.validation_skipped = False
        self._frozen_in_eval: tuple[nn.Module, ...] = ()
        self.sanity_checking = False  # during the num_sanity_val_steps pass
        self.val_metrics: dict[str, float] = {}  # the latest validation's, mid-epoch included
        self.save_dir = self.args.save_dir
        self.last_checkpoint: Path | None = None
        # plain values saved beside the weights in weights/last.pt and best.pt (the command
        # line records there how to rebuild the model)
        self.weights_meta: dict[str, Any] = {}
        self.resume_batch = 0  # batches of `epoch` already done (set by a resume)
        self.rank, self.world_size = 0, 1  # set from torch.distributed when fit starts
        # what the training step calls: the model, the user's wrapper (hookline/wrappers.py),
        # DistributedDataParallel(model) across ranks, torch.compile of either with compile=
        self.forward_model: nn.Module = model
        self._wrapped = wrapped
        # this epoch's per-step losses: floats on the CPU, detached tensors elsewhere
        self.epoch_losses: list[Any] = []  # (hookline/step_losses.py)
        self.epoch_sizes: list[int] = []  # each step's batch size: the means weigh by it
        self._running_means = RunningMeans()
        # what a checkpoint records: where fit is ("setup", "train" in the batches,
        # "epoch_end" until on_fit_epoch_end, "epoch_done" from it, "done" after fit; "idle"
        # otherwise), the schedulers your own code steps, and the torch RNG state (and the
        # states of train_data's own generators) the epoch's data order was drawn from
        self.phase = Phase.IDLE
        self.lr_schedulers: list[Any] = []
        self.step_extras: dict[str, Any] = {}  # a step's non-loss entries, as it returned them
        self.step_logs: dict[str, Any] = {}  # the last step's "logs" (epoch logs take them)
        # the structure of the model's inputs, from fit's first call (hookline.signature)
        self.input_signature: dict[str, Any] | None = None
        self._loss_names_fixed = False
        self._forward_fired = False  # the default step fired on_after_forward this batch
        self._mid_validated_at: tuple[int, int] | None = None  # (epoch, step) of the last
        self._training_step: Callable[[Any], Any] = self.training_step
        self._custom_training_step = False
        self.epoch_rng_state: torch.Tensor | None = None
        self.epoch_data_rng: list[torch.Tensor] | None = None
        self.resumed = False
        self.resumed_from: Path | None = None
        self.run_id = ""  # set when fit starts; kept across resumes, in every checkpoint
        self._resume_request: Any = None  # resume_from(): this fit's resume, args untouched
        self._resume_point: Any = None
        if default_callbacks:
            from hookline.callbacks.defaults import default_callbacks as make_defaults
            for callback in make_defaults(self.args):
                self.callbacks.add(callback)

    # --- the two spellings of one flag ----------------------------------------------------
    @property
    def stop_training(self) -> bool:
        """Keras' name for ``stop``: set it to end training after the current batch."""
        return self.stop

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.stop = bool(value)

    @property
    def tloss(self) -> torch.Tensor | None:
        """Running mean of each loss part over the epoch so far, as in Ultralytics: a tensor
        of ``len(loss_names)`` values, or one 0-d value for a single loss (reading syncs)."""
        mean = self.loss_means
        return mean if mean is None or mean.dim() == 0 else mean[1:]

    @property
    def loss_items(self) -> torch.Tensor | None:
        """This step's loss parts, detached (Ultralytics' name); the loss itself when it has
        no parts."""
        if self.loss_parts is not None:
            return self._part_items
        return None if self.loss is None else self.loss.detach()

    @property
    def train_loss(self) -> torch.Tensor | None:
        """Running mean of the total loss over the epoch so far (a 0-d tensor)."""
        mean = self.loss_means
        return mean if mean is None or mean.dim() == 0 else mean[0]

    @property
    def step_losses(self) -> torch.Tensor | None:
        """This epoch's loss of every step so far, as one tensor (1-d; ``[steps, 1 + parts]``
        with named parts); None before the epoch's first step. One read for all steps: no
        step waits for the device to record its loss."""
        return stacked(self.epoch_losses) if self.epoch_losses else None

    @property
    def loss_means(self) -> torch.Tensor | None:
        """This epoch's running means so far, read at once: a 0-d tensor for a single loss,
        else ``[total, *parts]``; None before the epoch's first step. Each read adds only the
        steps since the last, so reading it every step costs no more late in an epoch."""
        losses = self.epoch_losses
        return self._running_means.of(losses, self.epoch_sizes) if losses else None

    @property
    def batches_per_epoch(self) -> int | None:
        """The training batches an epoch runs: the data's length, cut by ``steps_per_epoch``
        and ``limit_train_batches``; None when the data has no length and nothing cuts it."""
        try:
            total: int | None = len(self.train_data)
        except TypeError:
            total = None
        limit = self.args.steps_per_epoch
        if limit is not None:
            total = limit if total is None else min(total, limit)
        return total

    def state_dict(self, *, rng: dict[str, Any] | None = None, keep_grads: bool = True,
                   exact: bool = True, note: str = "") -> dict[str, Any]:
        """Everything needed to continue this fit exactly where it is: model, optimizers,
        schedulers, scaler, random generators, the run state (``hookline.run_state``), the
        data order's fingerprint and the callbacks' states. What checkpoints hold; see
        ``hookline.checkpoint.build_checkpoint`` for the options."""
        from hookline.checkpoint_payload import trainer_payload
        return trainer_payload(self, rng=rng, keep_grads=keep_grads, exact=exact, note=note)

    def load_state_dict(self, state: dict[str, Any], *, source: Any = None) -> None:
        """Put this trainer back in the state ``state_dict()`` recorded, after checking that
        it fits (model, optimizers, data, arguments: a conflict is an error naming both
        values). Call it once set-up is done; ``Trainer(resume=...)`` and ``resume_from()``
        do, when fit starts."""
        from hookline.resume import restore
        restore(self, state, source=source)

    def resume_from(self, source: Any) -> None:
        """Make the fit that is starting resume from ``source`` (a checkpoint file, a folder,
        a loaded payload or True), whatever ``Trainer(resume=...)`` said: for callbacks that
        find a backup at ``on_pretrain_routine_start`` (BackupAndRestore). It applies once,
        when set-up is done, and leaves ``trainer.args`` as the user gave them."""
        self._resume_request = source

    def request_stop(self, reason: str) -> None:
        """Ask training to end after the current batch, recording why."""
        self.stop = True
        if not self.stop_reason:
            self.stop_reason = reason

    # --- public runs ----------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train for ``epochs``; returns the last epoch's metrics.

        SIGTERM during fit raises ``hookline.engine.base.Terminated`` (a KeyboardInterrupt),
        so on_exception and teardown run before the process ends.
        """
        try:
            anomaly = torch.autograd.set_detect_anomaly(True, check_nan=True) \
                if self.args.detect_anomaly else contextlib.nullcontext()
            with sigterm_raises(), anomaly:  # a user's own anomaly mode is left alone
                return self._run_top_level(self._fit, fit=True)
        finally:
            if self.phase is not Phase.DONE:
                self.phase = Phase.IDLE  # a failed fit: its state is no resume point

    def validate(self, data: Any = None) -> dict[str, float]:
        """Evaluate on ``data`` (default: val_data); returns metrics without the val_ prefix."""
        place_model(self.model, self.device)
        self._use_validation_step()
        return self._run_top_level(lambda: self.validator.run(data))

    def predict(self, source: Any, *, stream: bool = False, **options: Any) -> Any:
        """Predict on ``source`` with this trainer's model and callbacks (see Predictor);
        ``batch_size``, ``precision`` and ``save_dir`` default to the trainer's."""
        from hookline.engine.predictor import Predictor
        fixed = sorted({"model", "callbacks", "device"} & set(options))
        if fixed:
            raise TypeError(f"Trainer.predict() takes no {', '.join(fixed)}: it predicts with "
                            f"the trainer's own model, callbacks and device; build a "
                            f"hookline.Predictor for others")
        given = self._given_steps["predict_step"]
        if given is not None:  # a function given to the Trainer receives the trainer
            options.setdefault("step", lambda engine, batch: given(self, batch))
        elif type(self).predict_step is not Trainer.predict_step:
            options.setdefault("step", lambda engine, batch: self.predict_step(batch))
        # else the Predictor finds a model-declared predict_step itself, with its own batch_i
        options.setdefault("prediction", self.args.prediction)
        options.setdefault("target_key", self.args.target_key)
        options.setdefault("limit_batches", self.schedule.limit_predict_batches)
        options.setdefault("batch_size", self.args.batch_size)
        options.setdefault("save_dir", self.save_dir)
        options.setdefault("precision", self.precision)
        predictor = Predictor(self.model, callbacks=self.callbacks, device=self.device,
                              **options)
        return predictor(source, stream=stream)

    def export(self, format: str = "pt", **options: Any) -> Path:
        """Export the model (pt, safetensors, torchscript, onnx; see Exporter) to
        ``save_dir/weights/model.<format>`` (the current folder without a save_dir); prints
        and returns the path. No example is needed after fit (``input_signature``)."""
        from hookline.engine.exporter import Exporter
        from hookline.signature import custom_training_step, export_file, training_signature
        if "example_input" not in options:
            options.setdefault("signature", training_signature(self))
            if options["signature"] is None and format in ("torchscript", "onnx") and \
                    custom_training_step(self):
                raise ValueError(
                    f"export to {format} needs the model's inputs, and this trainer's custom "
                    f"training step decides them, so they cannot be read from a batch before "
                    f"fit: pass example_input= (what the step calls the model with), or "
                    f"export after fit, which records them")
        options.setdefault("file", export_file(self.save_dir, format))
        path = Exporter(self.model, callbacks=self.callbacks, format=format, **options).export()
        print(f"exported {format} to {path}")
        return path

    def summary(self, example_input: Any = None, *, max_depth: int = 1) -> Any:
        """The model's layers, output shapes (from ``example_input`` or the first training
        sample) and parameter counts; ``print(trainer.summary())`` shows the table."""
        from hookline.summary import trainer_summary
        return trainer_summary(self, example_input, max_depth=max_depth)

    # --- the loop -------------------------------------------------------------------------
    def _fit(self) -> dict[str, float]:
        fire = self.callbacks.fire
        self.stop, self.stop_reason = False, ""
        self.phase, self.resumed, self._resume_point = Phase.SETUP, False, None
        self.loss_parts, self.loss_names, self._loss_names_fixed = None, ["loss"], False
        # a new run: the last fit's metrics and fitness rank nothing of it (a mid-epoch save
        # before this run's first validation waits for its monitor); a resume restores them
        self.metrics, self.val_metrics, self.validation_skipped = {}, {}, False
        self.fitness = self.best_fitness = None
        # a new run starts at initial_epoch, not where an earlier fit's resume put it (a
        # resume sets it again below); the step count carries over, like Keras' iterations
        self.start_epoch = self.epoch = self.args.initial_epoch
        self.run_id = distributed.new_run_id()  # rank 0's on every rank; a resume puts
        # back the run's own id
        if self.args.seeded:
            _seed_everything(self.args.seed)
        fire("on_pretrain_routine_start", self)
        self._setup()
        self._check_schedule()
        if self.schedule.num_sanity_val_steps and self.validator.data is not None:
            self._sanity_check(self.validator.data)
        target, self._resume_request = self._resume_request or self.args.resume, None
        if target:
            from hookline.resume import resume_trainer
            resume_trainer(self, target)
        fire("on_pretrain_routine_end", self)
        fire("on_train_start", self)
        for epoch in range(self.start_epoch, self.epochs):
            self.epoch = epoch
            self._train_epoch(epoch)
            self._end_epoch()
            if self.stop:
                if self.schedule.may_stop(epoch + 1, self.step):
                    break
                # min_epochs / min_steps not reached: keep training, and the stop that was
                # held back ended nothing, so nothing reports it (a later stop names its own)
                self.stop, self.stop_reason = False, ""
        fire("on_train_end", self)
        self.phase = Phase.DONE
        return self.metrics

    def _check_schedule(self) -> None:
        """Refuse, before anything trains, a schedule the data cannot follow (it would fail
        or do nothing only at its first validation)."""
        val_data = self.validator.data
        if val_data is not None:
            self.schedule.mid_epoch_interval(_batch_count(self.train_data,
                                                          self.args.steps_per_epoch))
            # a fraction of val_data that has no length
            batch_limit(self.validator.args.limit_batches, val_data, "limit_val_batches")

    def _sanity_check(self, val_data: Batches) -> None:
        """Lightning's sanity check: a few validation batches before training, discarded.
        Every generator it may draw from (a shuffled val_data, a random validation step) is
        put back after it, so the run trains as it would without it."""
        state = get_rng_state()
        own = self.train_data.rng_states(), val_data.rng_states()
        self.sanity_checking = True
        try:
            self.validator.run(limit=self.schedule.num_sanity_val_steps)
        finally:
            self.sanity_checking = False
            set_rng_state(state)
            self.train_data.set_rng_states(own[0])
            val_data.set_rng_states(own[1])
        self.validator.metrics = {}

    def _setup(self) -> None:
        place_model(self.model, self.device)
        self._frozen_in_eval = frozen_in_eval(self.model)  # a training epoch keeps them so
        if self.train_metric_set is not None:
            self.train_metric_set.to(self.device)
        if self.precision == "fp16":
            self.scaler = torch.amp.GradScaler(self.device.type)
        self.forward_model = self.model
        if self.input_signature is None:
            from hookline.signature import record_first_call
            record_first_call(self, self.model)
        if distributed.is_distributed():
            self._setup_distributed()
        self._setup_compile()
        self._training_step, self._custom_training_step = resolve_step(
            self, "training_step", self._given_steps["training_step"], Trainer)
        self._use_validation_step()

    def _use_validation_step(self) -> None:
        """Give the validator this trainer's validation step (when it is not the default),
        for passes inside fit and ``validate()`` before any fit alike."""
        validator = self.validator
        validation_step, custom = resolve_step(
            self, "validation_step", self._given_steps["validation_step"], Trainer,
            batch_index=lambda: validator.batch_i)
        validator.use_step(validation_step if custom else None)

    def _setup_compile(self) -> None:
        """The forward the steps call: the user's wrapper (compile, DataParallel) or the
        engine's compile; ``self.model`` stays the plain module, so every state dict
        (checkpoints, weights, exports) keeps its own parameter names."""
        options, wrapped = self.args.compile, self._wrapped
        ddp = self.forward_model if self.forward_model is not self.model else None
        if options:
            settings = dict(options) if isinstance(options, dict) else {}
            self.forward_model = _compiled(self.forward_model, settings)
        elif wrapped is not None and wrapped.forward is not None and ddp is None:
            self.forward_model = wrapped.forward
        elif wrapped is not None and wrapped.compiled:
            # the user's compile around what it can no longer wrap (their DDP, or the model
            # inside DataParallel under torchrun): compiled again around the engine's forward
            self.forward_model = _compiled(self.forward_model, {})
        # validation goes through the wrapper or the compile too, never through DDP alone
        self.validator.forward_model = self.model if self.forward_model is ddp \
            else self.forward_model

    def _setup_distributed(self) -> None:
        """One process per rank (torchrun): shard array data, average gradients with DDP, and
        call rank-zero-only callbacks on rank 0 alone."""
        from torch.nn.parallel import DistributedDataParallel
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.callbacks.set_rank(self.rank)
        if isinstance(self.train_data, ArrayBatches):
            # the shards partition one order: rank 0's seed (an unseeded trainer drew its own
            # on each rank, and a per-rank torch seed made them differ)
            self.train_data.seed = distributed.all_gather_ints([self.train_data.seed])[0][0]
            if not self.args.seeded:
                self.args.seed = self.train_data.seed
            self.train_data.shard(self.rank, self.world_size)
        sampler = getattr(getattr(self.validator.data, "source", None), "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler) and self.rank == 0:
            warn("val_data's DataLoader has a DistributedSampler: validation runs on each "
                 "rank's own share, so its val_* metrics differ from rank to rank (and "
                 "ModelCheckpoint on rank 0 ranks by rank 0's share); hookline validates the "
                 "whole set on every rank, so pass val_data without the DistributedSampler",
                 UserWarning)
        device_ids = [self.device] if self.device.type == "cuda" else None
        self.forward_model = DistributedDataParallel(self.model, device_ids=device_ids)

    # --- the replaceable step --------------------------------------------------------------
    def training_step(self, batch: Any) -> Any:
        """The default training step: ``loss(model(x), y)`` under the batch and output rules of
        ``hookline.structure``; fires ``on_after_forward`` between the two. Replace it with
        ``Trainer(training_step=fn)``, a subclass method, or ``model.training_step``."""
        if type(batch) in _PAIRS and len(batch) == 2 and type(batch[0]) is torch.Tensor:
            target, weight = batch[1], None
            self.outputs = output = self.forward_model(batch[0])
        else:
            args, kwargs, target, weight = unpack_batch(
                batch, target_key=self.args.target_key, take_target=self.loss_fn is not None)
            self.outputs = output = self.forward_model(*args, **kwargs)
        self.preds = output if type(output) is torch.Tensor else \
            prediction_of(output, self.args.prediction)
        self.target, self.sample_weight = target, weight
        if self.callbacks.handlers["on_after_forward"]:
            self._forward_fired = True  # a custom step wrapping this one: fired once
            self.callbacks.fire("on_after_forward", self)
        direct = self.objective.direct
        if direct is not None and weight is None and target is not None and \
                type(output) is torch.Tensor:
            try:  # the common case without the objective's call: loss(model(x), y)
                return direct(output, target)
            except (RuntimeError, ValueError, IndexError) as error:
                explain_loss_error(error, output, target)
                raise
        return self.objective(output, target, weight)

    def validation_step(self, batch: Any) -> Any:
        """The default validation step (the Validator's); override it like training_step."""
        return self.validator.validation_step(batch)

    def predict_step(self, batch: Any) -> Any:
        """The default predict step: the model's output for the batch's inputs."""
        args, kwargs, _, _ = unpack_batch(batch, target_key=self.args.target_key)
        return self.model(*args, **kwargs)

    def compute_loss(self, output: Any, target: Any, sample_weight: Any = None) -> Any:
        """The loss of the default step (named losses, weighting), for custom steps to reuse."""
        return self.objective(output, target, sample_weight)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` as the engine does it (scaled under fp16), then
        ``on_after_backward``: for steps with ``automatic_optimization=False``."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.callbacks.handlers["on_after_backward"]:
            self.callbacks.fire("on_after_backward", self)

    def step_optimizer(self, which: str | int | None = None) -> None:
        """One optimizer step as the engine takes it (unscale, clip, the step events, the
        scaler's update, ``zero_grad``): for steps with ``automatic_optimization=False``.
        With several optimizers, ``which`` names (or numbers) the one to step."""
        self._optimizer_step(self.optimizer_set.names[self.optimizer_set.index(which)])

    def only_optimizer(self, which: str | int) -> contextlib.AbstractContextManager[None]:
        """A block in which only that optimizer's parameters require gradients (Lightning's
        ``toggle_optimizer``), for a manual step's backward with several optimizers."""
        return self.optimizer_set.only(self.optimizer_set.names[self.optimizer_set.index(which)])

    # --- the loop -------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> None:
        fire, handlers = self.callbacks.fire, self.callbacks.handlers
        on_batch_start = handlers["on_train_batch_start"]
        on_after_forward = handlers["on_after_forward"]
        on_after_loss = handlers["on_after_loss"]
        on_after_backward = handlers["on_after_backward"]
        on_batch_end = handlers["on_train_batch_end"]
        on_mid_val_end = handlers["on_mid_epoch_val_end"]
        step, custom = self._training_step, self._custom_training_step
        automatic = self.args.automatic_optimization
        device = self.device
        move = device.type != "cpu"
        as_float = records_floats(device)  # a CPU loss is read as it is: no device to wait for
        # full precision enters no context per batch (two Python calls less a step)
        amp = autocast(device, self.precision) if self.precision != "32" else None
        # ranks must run the same number of steps: a stop asked mid-epoch waits for its end
        alone = self.world_size == 1
        accumulate, scaler, metric_set = self.args.accumulate, self.scaler, self.train_metric_set
        optimizer, args = self.optimizer, self.args
        step_events = (handlers["optimizer_step"], handlers["on_params_update"],
                       handlers["on_before_zero_grad"])
        # the common step (no scaler, no clipping, no step listeners) skips _optimizer_step
        plain = scaler is None and not args.clip_grad_norm and not args.clip_grad_value
        several = len(self.optimizer_set) > 1
        signals, check_finite = SIGNALS, self.args.check_finite
        limit = self.args.steps_per_epoch
        last = _batch_count(self.train_data, limit)
        # mid-epoch validation only in the epochs that validate (Lightning's rule)
        interval = self.schedule.mid_epoch_interval(last) if self.validator.data is not None \
            and self.schedule.validates_after(epoch) else None
        max_steps, schedule = self.schedule.max_steps, self.schedule
        losses: list[Any] = []
        sizes: list[int] = []
        self.epoch_losses, self.epoch_sizes = losses, sizes
        self.step_logs = {}
        self.skip_rest_of_epoch = False
        if metric_set is not None:
            metric_set.reset()
        self.forward_model.train()
        for module in self._frozen_in_eval:
            module.training = False  # a submodule the user froze in eval (module_modes.py)
        self.phase = Phase.TRAIN
        fire("on_train_epoch_start", self)  # resume_batch > 0 here: a resumed partial epoch
        skip, self.resume_batch = self.resume_batch, 0
        resume, self._resume_point = self._resume_point, None
        if resume is None:
            self.epoch_rng_state = torch.get_rng_state()  # a DataLoader shuffles from it
            self.epoch_data_rng = self.train_data.rng_states()  # or from its own generator
            batches = self.train_data.epoch(epoch, skip)
        else:
            batches = resume.continue_epoch(self, epoch)
            if batches is None:
                return  # the checkpoint was taken after this epoch's batches
        seen = skip
        # one rank alone: a probe's compute() is a collective under torchmetrics' DDP sync,
        # and a probe that fails on one rank's batch only would leave the others waiting
        probe = self.validator.data is not None and self.validator.metric_set.needs_probe \
            and self.world_size == 1
        for batch_i, batch in enumerate(batches, start=skip):
            if limit is not None and batch_i >= limit:
                break
            self.batch_i, self.batch = batch_i, batch
            if on_batch_start:
                fire("on_train_batch_start", self)
            if move:
                batch = move_to(batch, device)
            if several and automatic:  # a step per optimizer (engine/optimizers.py)
                seen = batch_i + 1
                loss = self._train_each_optimizer(batch, amp or contextlib.nullcontext(), seen,
                                                  last)
                losses.append(self._record_parts(loss))
            else:
                if custom:
                    self.outputs = self.preds = self.target = self.sample_weight = None
                    self._forward_fired = False
                if amp is None:
                    result = step(batch)
                else:
                    with amp:
                        result = step(batch)
                if custom and on_after_forward and not self._forward_fired:
                    fire("on_after_forward", self)  # unless the step called the default one
                if type(result) is torch.Tensor:
                    loss = result
                    if self.loss_parts is not None:
                        raise parts_changed(self.loss_names, ["loss"])
                    if self.step_extras:
                        self.step_extras = {}  # an earlier step's dict entries
                    if loss.ndim:
                        raise not_scalar(loss)
                else:
                    loss = self._read_output(result)
                    if getattr(loss, "ndim", None) != 0:
                        raise not_scalar(loss)
                self.loss = loss
                if check_finite and not torch.isfinite(loss):
                    raise NonFiniteLossError.at(self, loss, batch)
                if on_after_loss:
                    fire("on_after_loss", self)
                if automatic:
                    scaled = loss / accumulate if accumulate > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    if on_after_backward:
                        fire("on_after_backward", self)
                seen = batch_i + 1
                if self._scaler_pending:
                    self._update_scaler()  # manual steps of several optimizers: once a batch
                if automatic and (seen % accumulate == 0 or seen == last):
                    if plain and not (step_events[0] or step_events[1] or step_events[2]):
                        signals.critical = True  # a SIGTERM now waits for the batch's end
                        optimizer.step()
                        self.step += 1
                        optimizer.zero_grad(set_to_none=True)
                        signals.critical = False
                    else:
                        self._optimizer_step()
                if self.loss_parts is None:
                    losses.append(loss.item() if as_float else loss.detach())  # step_losses.py
                else:
                    losses.append(self._record_parts(loss))
            sizes.append(sample_count(batch))
            if metric_set is not None:
                metric_set.update(self.preds, self.target, None, self.sample_weight)
            if probe:  # once: validation's metrics would first see a batch after the epoch
                probe = False
                self.validator.metric_set.probe(self.preds, self.target)
            # val_check_interval: validated before on_train_batch_end, so a backup taken
            # there holds it; its event fires after, where a checkpoint resumes exactly
            validated = interval is not None and seen % interval == 0 and seen != last
            if validated:
                self._validate_mid_epoch()
            if max_steps is not None and self.step >= max_steps:
                self.request_stop(f"max_steps={max_steps} reached")
            if on_batch_end:
                fire("on_train_batch_end", self)
            if validated and on_mid_val_end:
                fire("on_mid_epoch_val_end", self)
            if signals.pending:
                signals.raise_pending()  # a SIGTERM that came during the optimizer step
            if (self.skip_rest_of_epoch or self.stop) and schedule.ends_epoch(
                    epoch, self.step, stop=self.stop, skip=self.skip_rest_of_epoch,
                    alone=alone):
                break
        if seen == skip and skip == 0:
            raise ValueError(f"train_data yielded no batches in epoch {epoch}; pass at least "
                             f"one batch (a generator can only be iterated once)")
        if automatic and seen % accumulate and seen != last:
            for name in self.optimizer_set.names:  # leftover gradients of an unsized loader
                self._optimizer_step(name)
            if self._scaler_pending:
                self._update_scaler()

    def _read_output(self, result: Any) -> Any:
        """The total loss of a non-tensor step result; sets its parts, preds and target."""
        if result is None:
            raise returned_none(self.args.automatic_optimization)
        output = read_step_output(result)
        names = list(output.parts) if output.parts is not None else ["loss"]
        if names != self.loss_names:
            if self._loss_names_fixed or self.epoch_losses:
                raise parts_changed(self.loss_names, names)
            self.loss_names = names
        self._loss_names_fixed = True
        self.loss_parts = output.parts
        self._take_step_output(output)
        return output.loss

    def _take_step_output(self, output: Any) -> None:
        """What a step returned besides its loss: preds, target and sample weights for
        metrics, extras, and its logs."""
        if output.preds is not None:
            self.preds = output.preds
        if output.target is not None:
            self.target = output.target
        if output.sample_weight is not None:
            self.sample_weight = output.sample_weight
        self.step_extras = output.extras
        if output.logs is not None:
            self.step_logs = dict(output.logs)

    def _record_parts(self, loss: torch.Tensor) -> torch.Tensor:
        """One row ``[total, *parts]`` for the epoch's running means; ``loss_items`` = parts."""
        parts = self.loss_parts or {}
        row = torch.stack([loss.detach(), *(part.detach().to(loss.device)
                                            for part in parts.values())])
        self._part_items = row[1:]
        return row

    def _train_each_optimizer(self, batch: Any, amp: Any, seen: int,
                              last: int | None) -> torch.Tensor:
        """One batch with several optimizers (automatic): the step, backward and optimizer
        step once per due optimizer, each with only its own parameters requiring grad. Each
        optimizer's loss is a loss part named after it (NaN on batches it skips)."""
        fire, handlers = self.callbacks.fire, self.callbacks.handlers
        optimizers, accumulate, scaler = self.optimizer_set, self.args.accumulate, self.scaler
        custom = self._custom_training_step
        parts: dict[str, torch.Tensor] = {}
        taken: list[torch.Tensor] = []
        for index, name in enumerate(optimizers.names):
            if not optimizers.due(index, self.batch_i):
                parts[name] = torch.scalar_tensor(math.nan, device=self.device)
                continue
            self.optimizer_index, self.optimizer_name = index, name
            with optimizers.only(name):
                with amp:
                    if custom:
                        self.outputs = self.preds = self.target = self.sample_weight = None
                        self._forward_fired = False
                    result = self._training_step(batch)
                if custom and handlers["on_after_forward"] and not self._forward_fired:
                    fire("on_after_forward", self)
                if type(result) is torch.Tensor:
                    loss = result
                else:
                    output = read_step_output(result)
                    self._take_step_output(output)
                    loss = output.loss
                if getattr(loss, "ndim", None) != 0:
                    raise not_scalar(loss)
                self.loss = loss
                if self.args.check_finite and not torch.isfinite(loss):
                    raise NonFiniteLossError.at(self, loss, batch)
                if handlers["on_after_loss"]:
                    fire("on_after_loss", self)
                scaled = loss / accumulate if accumulate > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                if handlers["on_after_backward"]:
                    fire("on_after_backward", self)
            if seen % accumulate == 0 or seen == last:
                self._optimizer_step(name)
            parts[name] = detached = loss.detach()
            taken.append(detached)
        if self._scaler_pending:
            self._update_scaler()
        self.loss_names, self.loss_parts = list(parts), parts
        self._loss_names_fixed = True
        return torch.stack(taken).sum()

    def _update_scaler(self) -> None:
        self.scaler.update()
        self._scaler_pending = False

    def _optimizer_step(self, name: str | None = None) -> None:
        optimizers = self.optimizer_set
        name = optimizers.names[0] if name is None else name
        optimizer = optimizers.by_name[name]
        self.optimizer_name, self.optimizer_index = name, optimizers.names.index(name)
        several = len(optimizers) > 1
        SIGNALS.critical = True  # a SIGTERM during the step waits for the batch's end
        try:
            self._step_one(optimizer, name, several)
        finally:
            SIGNALS.critical = False

    def _step_one(self, optimizer: torch.optim.Optimizer, name: str, several: bool) -> None:
        scaler, args = self.scaler, self.args
        fire, handlers = self.callbacks.fire, self.callbacks.handlers
        if scaler is not None and (args.clip_grad_norm or args.clip_grad_value or
                                   handlers["optimizer_step"]):
            scaler.unscale_(optimizer)  # scaler.step would unscale anyway: no extra work
        if args.clip_grad_norm or args.clip_grad_value:
            params = self.optimizer_set.params_of(name)  # Lightning's: the stepped ones
            if args.clip_grad_norm:
                nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
            if args.clip_grad_value:
                nn.utils.clip_grad_value_(params, args.clip_grad_value)
        if handlers["optimizer_step"]:
            fire("optimizer_step", self)
        if scaler is not None:
            scaler.step(optimizer)
            if several:
                self._scaler_pending = True  # updated once, after every optimizer stepped
            else:
                scaler.update()
        else:
            optimizer.step()
        self.step += 1
        if handlers["on_params_update"]:
            fire("on_params_update", self)
        if handlers["on_before_zero_grad"]:
            fire("on_before_zero_grad", self)
        optimizer.zero_grad(set_to_none=True)

    def _end_epoch(self) -> None:
        fire = self.callbacks.fire
        self.phase = Phase.EPOCH_END
        self.metrics = metrics = self._epoch_losses()
        if self.train_metric_set is not None:
            metrics.update(self.train_metric_set.compute(with_loss=False))
        for name, value in self.step_logs.items():
            metrics.setdefault(str(name), float(value))
        if self.world_size > 1:
            self.metrics = metrics = distributed.all_mean(metrics)  # every rank logs the same
        fire("on_train_epoch_end", self)
        has_validation = self.validator.data is not None
        self.validation_skipped = has_validation and not self.schedule.validates_after(
            self.epoch)
        if has_validation and not self.validation_skipped:
            if self._mid_validated_at != (self.epoch, self.step):
                self.val_metrics = self.validator.run()
            # else the epoch ended (a stop) right after a mid-epoch validation of these same
            # weights: its results stand, as in Lightning, instead of a second pass
            metrics.update(self._prefixed(self.val_metrics))
        # an epoch that skipped validation has no fitness: train loss is no stand-in for it
        self.fitness = None if self.validation_skipped else self._fitness(metrics)
        # NaN is never the best: a NaN first epoch would otherwise be a best nothing beats
        fitness = self.fitness
        improved = fitness is not None and not math.isnan(fitness) and (
            self.best_fitness is None or fitness > self.best_fitness)
        if improved:
            self.best_fitness = self.fitness
        if self.save_dir is not None and self.rank == 0:
            self._save_weights(best=improved)
        self.phase = Phase.EPOCH_DONE
        fire("on_fit_epoch_end", self)
        if self.world_size > 1 and distributed.any_rank(self.stop) and not self.stop:
            self.request_stop("another rank asked to stop")

    def _validate_mid_epoch(self) -> None:
        """A ``val_check_interval`` validation. Its ``val_*`` replace the last epoch's in
        ``trainer.metrics`` (the rest stay until this epoch ends), so what listens to
        ``on_mid_epoch_val_end`` reads it where it reads an epoch's."""
        self.val_metrics = self.validator.run()
        self.metrics = {**self.metrics, **self._prefixed(self.val_metrics)}
        self.validation_skipped = False  # the val_* there are this validation's
        self._mid_validated_at = (self.epoch, self.step)

    def _prefixed(self, values: dict[str, float]) -> dict[str, float]:
        """A validation's metrics as ``trainer.metrics`` names them: ``val/<part>`` for a
        named loss part (Ultralytics' columns), ``val_<name>`` for the rest (Keras')."""
        loss_names = self.validator.loss_names
        parts = set(loss_names) if loss_names != ["loss"] else set()
        return {f"val/{name}" if name in parts else f"val_{name}": value
                for name, value in values.items()}

    def _epoch_losses(self) -> dict[str, float]:
        """``loss`` (the epoch's mean total) and ``train/<part>`` for each named part, read
        with one device copy; empty when the epoch had no batches."""
        means = self.loss_means
        if means is None:
            return {}
        if means.dim() == 0:
            return {"loss": float(means)}
        values = means.tolist()
        return {"loss": values[0], **{f"train/{name}": value
                                      for name, value in zip(self.loss_names, values[1:])}}

    def _fitness(self, metrics: dict[str, float]) -> float | None:
        name = self.args.fitness
        if name is None:
            name = next((key for key in ("val_accuracy", "val_loss", "loss") if key in metrics),
                        None)
            if name is None:
                return None
        elif name not in metrics:
            raise ValueError(f"fitness={name!r} is not among this epoch's metrics "
                             f"{sorted(metrics)}; pick one of them")
        value = metrics[name]
        return -value if direction(name) == "min" else value

    def _save_weights(self, *, best: bool) -> None:
        folder = self.save_dir / "weights"
        extra = {"epoch": self.epoch, "metrics": dict(self.metrics),
                 "fitness": self.fitness, "best_fitness": self.best_fitness,
                 "input_signature": self.input_signature, **self.weights_meta}
        self.last_checkpoint = save_weights(self.model, folder / "last.pt", extra)
        if best:
            save_weights(self.model, folder / "best.pt", extra)
        self.callbacks.fire("on_model_save", self)

    def _build_optimizer(self, optimizer: Any, lr: float) -> torch.optim.Optimizer:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(optimizer, torch.optim.Optimizer):
            return optimizer
        if isinstance(optimizer, str):
            factory = _OPTIMIZERS.get(optimizer.lower())
            if factory is None:
                raise ValueError(f"unknown optimizer {optimizer!r}; use one of "
                                 f"{sorted(_OPTIMIZERS)}, an optimizer instance or a factory "
                                 f"f(params) -> optimizer")
            return factory(trainable, lr=lr)
        if callable(optimizer):
            built = optimizer(trainable)
            if not isinstance(built, torch.optim.Optimizer):
                raise TypeError(f"the optimizer factory returned {type(built).__name__}, "
                                f"expected a torch.optim.Optimizer")
            return built
        raise TypeError(f"optimizer must be a torch optimizer, a factory f(params) or a name, "
                        f"got {type(optimizer).__name__}")


def _compiled(module: nn.Module, options: dict[str, Any]) -> nn.Module:
    """``torch.compile(module)``: an nn.Module (an OptimizedModule) for a module given."""
    return cast("nn.Module", torch.compile(module, **options))


class NonFiniteLossError(FloatingPointError):
    """``check_finite=True`` met a NaN or infinite loss (raised before its backward pass, so
    the weights are still those of the last good step)."""

    @classmethod
    def at(cls, trainer: Trainer, loss: torch.Tensor, batch: Any) -> NonFiniteLossError:
        bad = [f"{where} ({count} of {total})" for where, count, total in _non_finite(batch)]
        inputs = (f"; the batch holds non-finite values in {', '.join(bad)}: clean the data "
                  f"(e.g. torch.nan_to_num) or drop those samples") if bad else (
            "; the batch itself is finite: lower the learning rate, clip gradients "
            "(clip_grad_norm=) or check the loss for log(0) or division by zero")
        return cls(f"the loss is {float(loss.detach())} at epoch {trainer.epoch}, batch "
                   f"{trainer.batch_i} (after {trainer.step} optimizer steps){inputs}")


def _non_finite(value: Any, where: str = "batch") -> list[tuple[str, int, int]]:
    """(place, non-finite count, size) for every floating tensor of a nested batch."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return []
        count = int((~torch.isfinite(value)).sum())
        return [(where, count, value.numel())] if count else []
    if isinstance(value, dict):
        return [item for key, inner in value.items()
                for item in _non_finite(inner, f"{where}[{key!r}]")]
    if isinstance(value, (tuple, list)):
        return [item for i, inner in enumerate(value) for item in _non_finite(inner, f"{where}[{i}]")]
    return []


def _apply_freeze(model: nn.Module, freeze: int | Sequence[int | str] | None) -> None:
    """Freeze the first ``freeze`` top-level children, or the parameters under the given
    prefixes and top-level child indexes (Ultralytics' ``freeze=[0, 2]``)."""
    if freeze is None:
        return
    children = [name for name, _ in model.named_children()]
    if isinstance(freeze, bool):
        raise TypeError(f"freeze={freeze} is not a number of blocks: give freeze=n (the first "
                        f"n top-level children), a list of indexes or name prefixes, or None")
    if isinstance(freeze, int):
        if not 0 <= freeze < len(children):
            raise ValueError(f"freeze={freeze} must count from 0 to {len(children) - 1}: the "
                             f"model has {len(children)} top-level children "
                             f"({', '.join(children) or 'none'}), and freezing all of them "
                             f"leaves nothing to train")
        prefixes = children[:freeze]
    elif isinstance(freeze, str):
        prefixes = [_freeze_prefix(model, children, freeze)]  # one prefix, not its letters
    else:
        prefixes = [_freeze_prefix(model, children, item) for item in freeze]
    trainable = [name for name, parameter in model.named_parameters()
                 if parameter.requires_grad]
    frozen = [name for name in trainable
              if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)]
    if trainable and len(frozen) == len(trainable):
        raise ValueError(f"freeze={freeze!r} freezes every trainable parameter of the model, "
                         f"so nothing would train; leave at least one block out (its "
                         f"top-level children are {', '.join(children) or 'none'})")
    parameters = dict(model.named_parameters())
    for name in frozen:
        parameters[name].requires_grad_(False)


def _freeze_prefix(model: nn.Module, children: list[str], item: int | str) -> str:
    """The name prefix one entry of a freeze list stands for; an error naming the valid ones
    when it matches nothing (a typo would otherwise train what was meant to stay frozen)."""
    if isinstance(item, int) and not isinstance(item, bool):
        if 0 <= item < len(children):
            return children[item]
        raise ValueError(f"freeze={item} is no index of the model's top-level children: it "
                         f"has {len(children)} ({', '.join(children) or 'none'}); give an "
                         f"index from 0 to {len(children) - 1} or a parameter-name prefix")
    if not isinstance(item, str):
        raise TypeError(f"freeze lists hold top-level child indexes (int) or parameter-name "
                        f"prefixes (str), got {item!r}")
    names = {module for module, _ in model.named_modules() if module} | {
        parameter for parameter, _ in model.named_parameters()}
    if item in names or any(name.startswith(item + ".") for name in names):
        return item
    close = difflib.get_close_matches(item, sorted(names), n=3)
    nearest = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise ValueError(f"freeze={item!r} matches no parameter or submodule of the model; "
                     f"{nearest}its top-level children are {', '.join(children) or 'none'} "
                     f"(names as in model.named_parameters(), or indexes of the children)")


_PAIRS = (tuple, list)


def _batch_count(batches: Any, limit: int | None) -> int | None:
    try:
        count = len(batches)
    except TypeError:
        return limit
    return count if limit is None else min(count, limit)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch.accelerator.is_available():
        torch.manual_seed(seed)  # the CPU and every device generator, lazily for the devices
    else:
        # the same on a machine without accelerators, without torch.manual_seed's queueing of
        # a seed per absent device type, each with a formatted stack (0.2 ms a fit and more
        # from a deep stack)
        torch.default_generator.manual_seed(seed)

"""ModelCheckpoint: save the model during training, keeping the best k and the last."""

from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from hookline.callback import Callback
from hookline.callbacks.checkpoint_names import (
    check_template,
    fill_template,
    insert_names,
    versioned,
)
from hookline.callbacks.checkpoint_paths import adopt_stored_path, fixed_root
from hookline.callbacks.monitor import Monitor, config_key
from hookline.checkpoint import CheckpointWriter, build_checkpoint, remove_stale_temps
from hookline.options import check_save_dir, to_bool
from hookline.plain_number import as_python
from hookline.user_warning import warn

__all__ = ["ModelCheckpoint"]

_EXTENSIONS = (".pt", ".pth", ".ckpt", ".bin")


class ModelCheckpoint(Callback):
    """Save checkpoints during training: every epoch, the best ``save_top_k``, and/or the last.

    Where files go: ``filepath`` (Keras; a template used as given, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.2f}.pt"``) or ``dirpath`` + ``filename`` (Lightning;
    ``filename`` gets ``.pt`` unless it ends in .pt/.pth/.ckpt/.bin; ``""`` or None is the
    default ``epoch={epoch}-step={step}``). Templates may use ``{epoch}`` (0-based, as
    ``trainer.epoch``), ``{step}`` (optimizer steps), ``{batch}`` (the batch's index in its
    epoch) and any metric of ``trainer.metrics``; a field that cannot be filled raises at
    construction (syntax, attributes, indexes, a counter's format spec) or at the save that
    needs it (a metric not logged), never skipping a save. With neither, files go to
    ``<trainer save_dir>/checkpoints``.

    Args:
        monitor: the metric that ranks checkpoints; None ranks by recency (latest is best).
        mode: "min", "max" or "auto" (inferred from the metric's name).
        save_best_only: Keras' switch: keep only the best (``save_top_k=1``; monitor defaults
            to "val_loss").
        save_top_k: how many checkpoints to keep (-1 all, 0 none); files pushed out of the top
            k are deleted. Default: 1 with ``save_best_only``, else -1.
        save_last: also write ``last.pt`` beside them at every save.
        save_weights_only: only the model's weights (``hookline.checkpoint.save_weights``'s
            file, with epoch, step and metrics); otherwise a full checkpoint in hookline's
            verified format, which ``Trainer(resume=path)`` continues exactly.
        every_n_epochs / every_n_train_steps / train_time_interval: when to save (one of
            them; default every epoch). ``train_time_interval`` is a timedelta or seconds.
            With ``every_n_epochs`` and a ``val_*`` monitor, the validations a
            ``val_check_interval`` runs inside those epochs save too (as in Lightning);
            ``{step}`` in the name tells them apart.
        initial_value_threshold: a checkpoint is only kept if it beats this value.
        auto_insert_metric_name: Lightning's "epoch=3-val_loss=0.12" spelling of fields.
        save_freq: Keras' trigger: "epoch", or an integer n for ``every_n_train_steps=n``.
        enable_version_counter: Lightning's: a top-k file whose name is already taken (on
            disk, or by a file still in the top k) is written as ``name-v1.pt``,
            ``name-v2.pt``... instead of overwriting it; False overwrites. A name this save
            pushes out of the top k is reused, and ``last.pt`` is always rewritten in place.
        background: write files from a background thread (default): the loop only waits
            while the tensors are copied to memory; the next save waits for the previous write.
            False writes before ``on_model_save`` fires.
        verbose: print each save.

    After each save it fires ``on_model_save``. It exposes ``best_model_path``,
    ``best_model_score``, ``best_k_models`` (path -> score), ``last_model_path``, and
    ``checkpoint_dir``, which ``Trainer(resume=True)`` searches. Writes are atomic and, by
    default, in the background: when ``on_model_save`` fires the payload is copied and the
    file is being written (``wait()`` blocks until it is on disk); every file is on disk when
    fit ends, whatever the reason, and a file pushed out of the top k is deleted only after
    its replacement is on disk. Errors raise by default (``on_error="raise"``): a checkpoint
    guards data; a failed background write raises at the next save or when fit ends.

    Example::

        checkpoint = ModelCheckpoint(dirpath="ckpt", filename="model-{epoch:02d}-{val_loss:.3f}",
                                     monitor="val_loss", save_top_k=2, save_last=True)
        Trainer(model, loss="cross_entropy", train_data=(x, y), val_data=(xv, yv), epochs=10,
                callbacks=[checkpoint]).fit()
        print(checkpoint.best_model_path, checkpoint.best_model_score)
    """

    # After the decisions of the epoch (EarlyStopping at 30, so the stopping epoch is saved with
    # its final counters) and after History, the loggers and the progress bar (80-95), so a
    # full checkpoint holds their state for this epoch too; before BackupAndRestore (200).
    order = 150
    on_error = "raise"
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, filepath: str | Path | None = None, *, dirpath: str | Path | None = None,
                 filename: str | None = None, monitor: str | None = None, mode: str = "auto",
                 save_best_only: bool = False, save_top_k: int | None = None,
                 save_last: bool = False, save_weights_only: bool = False,
                 every_n_epochs: int | None = None, every_n_train_steps: int | None = None,
                 train_time_interval: timedelta | float | None = None,
                 initial_value_threshold: float | None = None,
                 auto_insert_metric_name: bool = False, save_freq: str | int | None = None,
                 enable_version_counter: bool = True, background: bool = True,
                 verbose: int = 0) -> None:
        owner = "ModelCheckpoint"
        if save_freq is not None:  # Keras' spelling of the two triggers
            if save_freq == "epoch":
                every_n_epochs = 1 if every_n_epochs is None else every_n_epochs
            elif isinstance(save_freq, int) and not isinstance(save_freq, bool) \
                    and every_n_train_steps is None:
                every_n_train_steps = save_freq
            else:
                raise ValueError(f"{owner}(save_freq={save_freq!r}) is not allowed; use "
                                 f"'epoch' or a number of optimizer steps (or "
                                 f"every_n_train_steps=, not both)")
        if filepath is not None and (dirpath is not None or filename is not None):
            raise ValueError(f"{owner}(filepath={str(filepath)!r}) cannot be combined with "
                             f"dirpath= or filename=: pass either filepath (Keras) or dirpath "
                             f"and filename (Lightning)")
        if save_best_only and monitor is None:
            monitor = "val_loss"  # Keras' default monitor
        if save_top_k is None:
            save_top_k = 1 if save_best_only else -1
        if isinstance(save_top_k, bool) or not isinstance(save_top_k, int) or save_top_k < -1:
            raise ValueError(f"{owner}(save_top_k={save_top_k!r}) is not allowed; use -1 (keep "
                             f"all), 0 (keep none) or a positive number of checkpoints to keep")
        if save_best_only and save_top_k != 1:
            raise ValueError(f"{owner}(save_best_only=True, save_top_k={save_top_k}) "
                             f"contradict each other; save_best_only means save_top_k=1")
        triggers = {"every_n_epochs": every_n_epochs, "every_n_train_steps": every_n_train_steps,
                    "train_time_interval": train_time_interval}
        given = [name for name, value in triggers.items() if value is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}({', '.join(f'{n}={triggers[n]!r}' for n in given)}): "
                             f"choose one of every_n_epochs, every_n_train_steps and "
                             f"train_time_interval")
        for name in ("every_n_epochs", "every_n_train_steps"):
            value = triggers[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{owner}({name}={value!r}) is not allowed; {name} must be "
                                 f"an integer >= 1")
        interval = train_time_interval
        if isinstance(interval, (int, float)) and not isinstance(interval, bool):
            interval = timedelta(seconds=interval)
        if interval is not None and (not isinstance(interval, timedelta)
                                     or interval.total_seconds() <= 0):
            raise ValueError(f"{owner}(train_time_interval={train_time_interval!r}) is not "
                             f"allowed; pass a positive timedelta or number of seconds")
        train_time_interval = interval
        self.monitor = Monitor(monitor, mode=mode, owner=owner) if monitor is not None else None
        if initial_value_threshold is not None and self.monitor is None:
            raise ValueError(f"{owner}(initial_value_threshold={initial_value_threshold!r}) "
                             f"needs monitor= to compare against")
        if filepath is not None and not str(filepath):
            raise ValueError(f"{owner}(filepath='') names no file; pass a template such as "
                             f"'ckpt/model-{{epoch:02d}}.pt', or dirpath= (and filename=)")
        if dirpath is not None and (not isinstance(dirpath, (str, os.PathLike))
                                    or not str(dirpath)):
            raise TypeError(f"{owner}(dirpath={dirpath!r}) must be a folder path (str or Path), "
                            f"or None for <save_dir>/checkpoints")
        # now, not at the first save after an epoch of training (a file in the way)
        check_save_dir(dirpath, owner, "dirpath")
        if filename is not None and not isinstance(filename, str):
            raise TypeError(f"{owner}(filename={filename!r}) must be a string template such as "
                            f"'model-{{epoch:02d}}'")
        # no folder given: <save_dir>/checkpoints of each run's trainer, resolved anew by every
        # fit (a reused instance must not write into, or resume from, an earlier trainer's)
        self._default_dir = filepath is None and dirpath is None
        if filepath is not None:
            self.template = str(filepath)
            self.dirpath: Path | None = Path(self.template).parent
            self._given_dirpath: str | None = None
        else:
            template = filename or "epoch={epoch}-step={step}"  # "" too: the default name
            if not template.endswith(_EXTENSIONS):
                template += ".pt"
            self._given_dirpath = str(dirpath) if dirpath is not None else None
            self.dirpath = Path(dirpath) if dirpath is not None else None
            self.template = template
        self.fields = check_template(self.template, owner,
                                     "filepath" if filepath is not None else "filename")
        # a name with a validation metric waits for an epoch that validated (Lightning saves
        # after validation when it runs every n epochs)
        self._names_validation = any(field.startswith(("val_", "val/")) for field in self.fields)
        self.filepath = filepath
        self.save_top_k = save_top_k
        self.save_best_only = bool(save_best_only)
        self.save_last = bool(save_last)
        self.save_weights_only = to_bool("save_weights_only", save_weights_only,
                                         owner="ModelCheckpoint")
        if every_n_epochs is None and every_n_train_steps is None and train_time_interval is None:
            every_n_epochs = 1
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.train_time_interval = train_time_interval
        self.initial_value_threshold = initial_value_threshold
        self.auto_insert_metric_name = bool(auto_insert_metric_name)
        self.enable_version_counter = bool(enable_version_counter)
        self.verbose = verbose
        self._writer = CheckpointWriter(background=bool(background))
        self._loaded = False
        self._reset()

    @property
    def mode(self) -> str | None:
        return self.monitor.mode if self.monitor is not None else None

    @property
    def checkpoint_dir(self) -> Path | None:
        """The folder files go to (None until a run resolves the default); where
        ``Trainer(resume=True)`` looks for checkpoints besides save_dir."""
        return self.dirpath

    @property
    def state_key(self) -> str:
        return config_key(
            "ModelCheckpoint", monitor=self.monitor.name if self.monitor else None,
            mode=self.mode, template=self.template, dirpath=self._given_dirpath,
            every_n_epochs=self.every_n_epochs, every_n_train_steps=self.every_n_train_steps,
            train_time_interval=self.train_time_interval)

    def _reset(self) -> None:
        self.best_k_models: dict[str, float] = {}
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.kth_best_model_path = ""
        self.kth_value: float | None = None
        self.last_model_path = ""
        self._stored: tuple[dict[str, float], str, str | None] | None = None
        self._saves = 0
        self._last_step_saved = -1
        self._validation_saved: tuple[int, int] | None = None  # (epoch, step), mid-epoch
        self._last_time = time.monotonic()

    # --- events: only the per-batch hook the configuration needs is subscribed -----------
    def hookline_handlers(self) -> dict[str, Any]:
        handlers: dict[str, Any] = {"on_pretrain_routine_start": self._resolve_folder,
                                    "on_train_start": self.on_train_start,
                                    "on_train_end": self.wait, "teardown": self.close}
        if self.every_n_epochs is not None:
            handlers["on_fit_epoch_end"] = self.on_fit_epoch_end
            if self.monitor is not None and self.monitor.name.startswith(("val_", "val/")):
                # Lightning's: with val_check_interval, a save after every validation
                handlers["on_mid_epoch_val_end"] = self.on_mid_epoch_val_end
        else:
            handlers["on_train_batch_end"] = self.on_train_batch_end
        return handlers

    def _resolve_folder(self, trainer: Any) -> None:
        """The default folder of this fit's trainer, before a resume looks for checkpoints
        in ``checkpoint_dir`` and loads this callback's state."""
        if self._default_dir:
            save_dir = getattr(trainer, "save_dir", None)
            self.dirpath = Path(save_dir) / "checkpoints" if save_dir is not None else None

    def on_train_start(self, trainer: Any) -> None:
        if not self._loaded:
            self._reset()
        self._loaded = False
        self._last_time = time.monotonic()
        self._resolve_folder(trainer)
        if self.dirpath is None:
            if trainer.save_dir is None:
                raise ValueError("ModelCheckpoint needs a folder: pass dirpath= or filepath=, "
                                 "or give the Trainer save_dir= (checkpoints then go to "
                                 "<save_dir>/checkpoints)")
            self.dirpath = Path(trainer.save_dir) / "checkpoints"
        self._adopt_stored_paths()
        remove_stale_temps(self.dirpath)  # left by a process killed mid-write

    def _folder(self) -> Path:
        if self.dirpath is None:
            raise RuntimeError("ModelCheckpoint has no folder yet: it is resolved when training "
                               "starts (on_train_start); pass dirpath= or filepath= to save "
                               "outside a Trainer run")
        return self.dirpath

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if self._validation_saved is not None and \
                self._validation_saved == (trainer.epoch, trainer.step):
            return  # the epoch ended right after a mid-epoch save (a stop): the same weights
        if (trainer.epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer, at_epoch_end=True)

    def on_mid_epoch_val_end(self, trainer: Any) -> None:
        """A validation inside the epoch ranks a save as an epoch's does (a val_* monitor
        only); the file is a mid-epoch checkpoint, which a resume continues exactly."""
        if (trainer.epoch + 1) % self.every_n_epochs == 0:
            self._validation_saved = (int(trainer.epoch), int(trainer.step))  # in the file too
            self.save(trainer, at_epoch_end=False)

    def on_train_batch_end(self, trainer: Any) -> None:
        step = trainer.step
        if step == 0 or step == self._last_step_saved:
            return  # no optimizer step yet, or none since the last save (accumulation)
        interval = self.train_time_interval
        if self.every_n_train_steps is not None:
            if step % self.every_n_train_steps:
                return
        elif interval is None:
            return  # neither steps nor time configured: hookline_handlers doesn't subscribe this
        elif time.monotonic() - self._last_time < interval.total_seconds():
            return
        self.save(trainer, at_epoch_end=False)

    # --- saving ---------------------------------------------------------------------------
    def save(self, trainer: Any, *, at_epoch_end: bool = True) -> None:
        """Save now by this callback's rules (top-k ranking, last), then fire on_model_save."""
        self._last_step_saved = trainer.step
        self._last_time = time.monotonic()
        self._saves += 1
        score = self._score(trainer, at_epoch_end)
        targets: list[Path] = []
        evicted: list[str] = []
        if score is not None:  # None: nothing ranked (save_top_k=0, or a monitor not logged yet)
            path = self.format_path(trainer, mid_epoch=not at_epoch_end)
            if self._qualifies(score):
                if self.enable_version_counter:
                    path = self._free_name(path)
                evicted = self._admit(path, score)
                targets.append(path)
        if self.save_last:
            last = self._folder() / "last.pt"
            self.last_model_path = str(last)
            targets.append(last)
        if not targets:
            return
        # the ranking and last path are updated first so the files hold this callback's new
        # state; one payload serves every file of this save
        payload = self._payload(trainer)
        self._write(trainer, targets, payload, evicted)
        trainer.run_callbacks("on_model_save")

    def wait(self, engine: Any = None) -> None:
        """Block until the last save is on disk (raises if its write failed)."""
        self._writer.wait()

    def close(self, engine: Any = None) -> None:
        """``wait``, then stop the writer's thread (the next save starts a new one)."""
        self._writer.close()

    def _score(self, trainer: Any, at_epoch_end: bool) -> float | None:
        if self.save_top_k == 0:
            return None
        if at_epoch_end and self._names_validation and trainer.validation_skipped:
            return None  # check_val_every_n_epoch: this epoch has no val_* to put in the name
        if self.monitor is None:
            return float(self._saves)  # rank by recency: the newest is the best
        name = self.monitor.name
        if not at_epoch_end and name not in trainer.metrics:
            return None  # mid-epoch, before the first validation: nothing to rank by yet
        value = self.monitor.read(trainer)
        return value

    def _qualifies(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.monitor is not None and self.initial_value_threshold is not None and \
                not self.monitor.is_better(score, float(self.initial_value_threshold)):
            return False
        if self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return True
        return self._better(score, self.kth_value)

    def _better(self, score: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.monitor is None:
            return score > reference
        return self.monitor.is_better(score, reference)

    def format_path(self, trainer: Any, *, mid_epoch: bool = False) -> Path:
        """The file name for the current epoch, step and batch (before any version suffix). A
        field that is not available raises a ValueError naming it."""
        values: dict[str, Any] = dict(trainer.metrics)
        values.update(epoch=trainer.epoch, step=trainer.step,
                      batch=getattr(trainer, "batch_i", 0))
        template = insert_names(self.template) if self.auto_insert_metric_name else self.template
        name = fill_template(template, self.fields, values, mid_epoch)
        return self._folder() / name if self.filepath is None else Path(name)

    def _free_name(self, path: Path) -> Path:
        """``path``, or ``path`` with -v1, -v2... when that name is taken (on disk, in the top
        k, or last.pt) by a file this save does not replace (Lightning's version counter)."""
        doomed = None  # the file this save pushes out of a full top k: its name may be reused
        if self.save_top_k != -1 and len(self.best_k_models) >= self.save_top_k:
            doomed = self._worst_key()
        last = str(self._folder() / "last.pt") if self.save_last else None
        candidate, version = path, 0
        while str(candidate) != doomed and (str(candidate) in self.best_k_models
                                            or str(candidate) == last or candidate.exists()):
            version += 1
            candidate = versioned(path, version)
        return candidate

    def _payload(self, trainer: Any) -> dict[str, Any]:
        if self.save_weights_only:
            metrics = {name: as_python(value) for name, value in trainer.metrics.items()}
            return {"epoch": trainer.epoch, "step": trainer.step, "metrics": metrics,
                    "input_signature": getattr(trainer, "input_signature", None)}
        return build_checkpoint(trainer)

    def _write(self, trainer: Any, paths: list[Path], payload: dict[str, Any],
               evicted: list[str]) -> None:
        def delete_evicted() -> None:  # once the new files are on disk
            for old in evicted:
                Path(old).unlink(missing_ok=True)
        if self.save_weights_only:
            self._writer.save_weights(trainer.model, paths, payload, then=delete_evicted)
        else:
            self._writer.save(payload, paths, then=delete_evicted)
        trainer.last_checkpoint = paths[0]
        if self.verbose:
            print(f"Epoch {trainer.epoch}: saved checkpoint {', '.join(map(str, paths))}")

    def _admit(self, path: Path, score: float) -> list[str]:
        """Enter ``path`` in the top k; returns the files pushed out (to delete once the new
        file is written)."""
        key = str(path)
        self.best_k_models.pop(key, None)  # the same name again: it is about to be overwritten
        self.best_k_models[key] = score
        evicted = []
        if self.save_top_k != -1:
            while len(self.best_k_models) > self.save_top_k:
                worst = self._worst_key()
                del self.best_k_models[worst]
                if worst != key:
                    evicted.append(worst)
        self._rank()
        return evicted

    def _worst_key(self) -> str:
        worst = None
        for key, score in self.best_k_models.items():
            if worst is None or self._better(self.best_k_models[worst], score):
                worst = key
        assert worst is not None
        return worst

    def _rank(self) -> None:
        if not self.best_k_models:
            return
        best = None
        for key, score in self.best_k_models.items():
            if best is None or self._better(score, self.best_k_models[best]):
                best = key
        self.best_model_path = best or ""
        self.best_model_score = self.best_k_models[best] if best else None
        self.kth_best_model_path = self._worst_key()
        self.kth_value = self.best_k_models[self.kth_best_model_path]

    # --- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best_k_models": dict(self.best_k_models), "best_model_path":
                self.best_model_path, "best_model_score": self.best_model_score,
                "last_model_path": self.last_model_path, "saves": self._saves,
                "last_step_saved": self._last_step_saved,
                "validation_saved": list(self._validation_saved) if self._validation_saved
                else None,
                "dirpath": str(self.dirpath) if self.dirpath is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the ranking of a checkpoint. Its paths are data from disk: they are only
        adopted inside this callback's own folder (``_adopt_stored_paths``), never followed."""
        self._reset()  # nothing of an earlier fit of this instance survives: best, kth, last
        self._stored = ({str(k): float(v) for k, v in state["best_k_models"].items()},
                        str(state["last_model_path"] or ""),
                        str(state["dirpath"]) if state.get("dirpath") else None)
        self._saves = int(state["saves"])
        self._last_step_saved = int(state["last_step_saved"])
        saved = state.get("validation_saved")  # absent from files written before it was
        self._validation_saved = (int(saved[0]), int(saved[1])) if saved else None
        self._loaded = True
        if self.dirpath is not None and not self._default_dir:
            self._adopt_stored_paths()  # else once on_train_start knows this run's folder

    def _adopt_stored_paths(self) -> None:
        if self._stored is None:
            return
        best_k, last, stored_root = self._stored
        self._stored = None
        root = fixed_root(self._folder())
        ignored = []
        for key, score in best_k.items():
            path = adopt_stored_path(key, stored_root, root)
            if path is None:
                ignored.append(key)
            else:
                self.best_k_models[str(path)] = score
        last_path = adopt_stored_path(last, stored_root, root) if last else None
        if last and last_path is None:
            ignored.append(last)
        self.last_model_path = str(last_path) if last_path is not None else ""
        self._rank()
        if ignored:
            warn(f"ModelCheckpoint ignored {len(ignored)} path(s) of the checkpoint it "
                 f"resumed from that lie outside its folder {root}: "
                 f"{', '.join(map(repr, ignored[:5]))}. They are never deleted or "
                 f"written; the ranking continues without them", RuntimeWarning)


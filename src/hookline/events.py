"""The event catalogue: the single source of truth for every event hookline fires.

Each event has a name, the run it belongs to, when it fires and what state is ready then.
The docs page ``docs/events.md`` and the "did you mean" error for unknown names are generated
from this module, so the documented order and the code cannot drift apart.

Regenerate the docs page with ``hookline events --markdown > docs/events.md``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["ALIASES", "EVENTS", "EVENT_NAMES", "PORTED_NAMES", "Event", "PortedName",
           "looks_like_event", "ported_hint", "resolve_event"]


@dataclass(frozen=True)
class Event:
    """One named moment of a run."""

    name: str
    run: str  # "train", "val", "predict", "export" or "any"
    when: str
    ready: str
    per_batch: bool = False


EVENTS: tuple[Event, ...] = (
    # --- training (Trainer.fit) -------------------------------------------------------------
    Event("on_pretrain_routine_start", "train",
          "fit begins (the run's seed is set), before the model is moved to its device",
          "args, model, optimizer, train_data, save_dir; a resume has not been applied yet"),
    Event("on_pretrain_routine_end", "train",
          "set-up is done: model on its device, grad scaler built, a resume applied",
          "model, optimizer, device, start_epoch"),
    Event("on_train_start", "train", "training begins, before the first epoch",
          "epochs, epoch (start epoch)"),
    Event("on_train_epoch_start", "train", "each epoch, before its first batch",
          "epoch"),
    Event("on_train_batch_start", "train", "each training batch, before the forward pass",
          "batch, batch_i", per_batch=True),
    Event("on_after_forward", "train",
          "each training batch, right after the forward pass (after a custom training step "
          "returns)",
          "outputs (as the model returned them), preds (what metrics receive), target",
          per_batch=True),
    Event("on_after_loss", "train", "each training batch, after the loss is computed",
          "loss (the total, a tensor; reading its value syncs the device), loss_parts",
          per_batch=True),
    Event("on_after_backward", "train",
          "each training batch, after loss.backward(); gradients are accumulated (with "
          "automatic_optimization=False: when the step calls trainer.backward)",
          "model gradients (scaled under fp16)", per_batch=True),
    Event("optimizer_step", "train",
          "each optimizer step (every `accumulate` batches), right before optimizer.step(); "
          "gradients are final (clipped, and unscaled under fp16, as Lightning's "
          "on_before_optimizer_step sees them)",
          "model gradients, optimizer", per_batch=True),
    Event("on_params_update", "train", "each optimizer step, right after optimizer.step()",
          "updated parameters, step", per_batch=True),
    Event("on_before_zero_grad", "train",
          "each optimizer step, after on_params_update and before optimizer.zero_grad()",
          "gradients of the step just taken", per_batch=True),
    Event("on_train_batch_end", "train",
          "each training batch, after backward (and the step, when one was due)",
          "loss, loss_items (detached parts), tloss (running mean per part), step",
          per_batch=True),
    Event("on_mid_epoch_val_end", "train",
          "after a validation inside the epoch (val_check_interval), right after that "
          "batch's on_train_batch_end; not after the epoch-end validation (that is "
          "on_fit_epoch_end)",
          "val_metrics; metrics holds its val_* (the rest are the last epoch's), step, "
          "batch_i"),
    Event("on_train_epoch_end", "train",
          "each epoch, after its last batch and before validation",
          "tloss, loss_names; metrics['loss'] and metrics['train/<part>'] (validation "
          "metrics are not ready yet)"),
    Event("on_model_save", "train",
          "a checkpoint was written (by the engine's save_dir weights or a checkpoint callback)",
          "fitness, best_fitness, metrics, last_checkpoint"),
    Event("on_fit_epoch_end", "train",
          "each epoch, after validation and checkpointing; fires exactly once per epoch",
          "metrics (train and val_*), fitness, best_fitness"),
    Event("on_train_end", "train", "training completed or was stopped by a callback",
          "metrics, best_fitness, stop_reason"),
    # --- validation (Validator; also inside fit) ------------------------------------------
    Event("on_val_start", "val", "validation begins", "validator.data, validator.model"),
    Event("on_val_batch_start", "val", "each validation batch, before the forward pass",
          "batch, batch_i", per_batch=True),
    Event("on_val_batch_end", "val", "each validation batch, after the forward pass and loss",
          "batch, batch_i, preds, loss", per_batch=True),
    Event("on_val_end", "val", "validation is over and its metrics are computed",
          "metrics (without the val_ prefix)"),
    # --- prediction (Predictor) -----------------------------------------------------------
    Event("on_predict_start", "predict", "prediction begins", "predictor.args, model"),
    Event("on_predict_batch_start", "predict", "each batch, before the forward pass",
          "batch, batch_i", per_batch=True),
    Event("on_predict_postprocess_end", "predict",
          "each batch, after raw outputs became results and before they are saved",
          "preds, results (replaceable), args.save (can be toggled)", per_batch=True),
    Event("on_predict_batch_end", "predict", "each batch, after its results were saved",
          "batch, results (replaceable)", per_batch=True),
    Event("on_predict_end", "predict", "prediction is over",
          "results (the last batch's: a stream holds no others), saved"),
    # --- export (Exporter) ----------------------------------------------------------------
    Event("on_export_start", "export", "export begins", "exporter.format, exporter.file"),
    Event("on_export_end", "export", "the exported file is written (and checked)",
          "exporter.file"),
    # --- any run --------------------------------------------------------------------------
    Event("on_exception", "any",
          "an exception (or KeyboardInterrupt) escapes a run; it is re-raised unchanged after",
          "engine.exception"),
    Event("teardown", "any",
          "every top-level run (fit, validate, predict, export) ends, whatever the reason",
          "everything; engine.exception is set if the run failed"),
)

EVENT_NAMES: frozenset[str] = frozenset(event.name for event in EVENTS)

# Keras' names, accepted on native callbacks and by add_callback, mapped to hookline's.
ALIASES: dict[str, str] = {
    "on_train_begin": "on_train_start",
    "on_epoch_begin": "on_train_epoch_start",
    "on_epoch_end": "on_fit_epoch_end",
    "on_train_batch_begin": "on_train_batch_start",
    "on_batch_begin": "on_train_batch_start",  # Keras' legacy spelling
    "on_batch_end": "on_train_batch_end",
    "on_test_begin": "on_val_start",
    "on_test_end": "on_val_end",
    "on_test_batch_begin": "on_val_batch_start",
    "on_test_batch_end": "on_val_batch_end",
    "on_predict_begin": "on_predict_start",
    "on_predict_batch_begin": "on_predict_batch_start",
}


@dataclass(frozen=True)
class PortedName:
    """A hook name from another framework that hookline does not accept as it is, with the
    hookline event(s) that take its place. They are not aliases because their signatures or
    their moment differ: registering one raises, naming the replacement."""

    framework: str
    events: tuple[str, ...]
    note: str = ""


def _ported(framework: str, *events: str, note: str = "") -> PortedName:
    return PortedName(framework, events, note)


_L = "Lightning"
PORTED_NAMES: dict[str, PortedName] = {
    "on_fit_start": _ported(_L, "on_pretrain_routine_start", "on_train_start",
                            note="on_pretrain_routine_start before set-up, on_train_start after"),
    "on_fit_end": _ported(_L, "on_train_end", "teardown",
                          note="teardown also runs when the fit fails"),
    "setup": _ported(_L, "on_pretrain_routine_start"),
    "on_sanity_check_start": _ported(_L, "on_val_start"),
    "on_sanity_check_end": _ported(_L, "on_val_end"),
    "on_validation_start": _ported(_L, "on_val_start"),
    "on_validation_end": _ported(_L, "on_val_end"),
    "on_validation_epoch_start": _ported(_L, "on_val_start"),
    "on_validation_epoch_end": _ported(_L, "on_val_end",
                                       note="or on_fit_epoch_end, with the val_* metrics"),
    "on_validation_batch_start": _ported(_L, "on_val_batch_start"),
    "on_validation_batch_end": _ported(_L, "on_val_batch_end"),
    "on_validation_model_eval": _ported(_L, "on_val_start"),
    "on_validation_model_train": _ported(_L, "on_val_end"),
    "on_test_start": _ported(_L, "on_val_start", note="hookline tests with a Validator"),
    "on_test_epoch_start": _ported(_L, "on_val_start"),
    "on_test_epoch_end": _ported(_L, "on_val_end"),
    "on_test_batch_start": _ported(_L, "on_val_batch_start"),
    "on_predict_epoch_start": _ported(_L, "on_predict_start"),
    "on_predict_epoch_end": _ported(_L, "on_predict_end"),
    "on_before_backward": _ported(_L, "on_after_loss"),
    "on_before_optimizer_step": _ported(_L, "optimizer_step",
                                        note="gradients are final (unscaled, clipped) there"),
    "on_after_optimizer_step": _ported(_L, "on_params_update"),
    "on_before_batch_transfer": _ported(_L, "on_train_batch_start"),
    "on_after_batch_transfer": _ported(_L, "on_train_batch_start"),
    "on_save_checkpoint": _ported(_L, "on_model_save",
                                  note="a callback's own state goes in state_dict()"),
    "on_load_checkpoint": _ported(_L, "on_pretrain_routine_end",
                                  note="a callback's own state comes back in "
                                       "load_state_dict(); a resume is applied before "
                                       "on_pretrain_routine_end"),
}

_ALL_NAMES = sorted(EVENT_NAMES | set(ALIASES))


def ported_hint(name: str) -> str:
    """The sentence that tells a user of another framework which event replaces ``name``
    (empty when ``name`` is not in ``PORTED_NAMES``)."""
    ported = PORTED_NAMES.get(name)
    if ported is None:
        return ""
    events = " or ".join(ported.events)
    note = f" ({ported.note})" if ported.note else ""
    return f"{name!r} is {ported.framework}'s name; in hookline use {events}{note}."


def looks_like_event(name: str) -> bool:
    """Whether a method name is meant as an event hook (so a typo in it must not pass silently)."""
    return name.startswith("on_") or name in EVENT_NAMES


def resolve_event(name: str) -> str:
    """Return the canonical event name for ``name`` (an event or a Keras alias).

    Raises ValueError naming the closest valid names when ``name`` is unknown.
    """
    if name in EVENT_NAMES:
        return name
    alias = ALIASES.get(name)
    if alias is not None:
        return alias
    if not isinstance(name, str):
        raise TypeError(f"an event name must be a string, got {type(name).__name__}: {name!r}")
    hint = ported_hint(name)
    if hint:
        raise ValueError(f"unknown event {name!r}: {hint} The events are listed in "
                         f"docs/events.md (or hookline.EVENT_NAMES).")
    close = difflib.get_close_matches(name, _ALL_NAMES, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown event {name!r}.{hint} The events are listed in docs/events.md "
        f"(or hookline.EVENT_NAMES)."
    )


def catalogue_markdown() -> str:
    """The docs page for the catalogue, generated so that it cannot drift from the code."""
    lines = [
        "# Events",
        "",
        "<!-- generated by `hookline events --markdown > docs/events.md`; do not edit -->",
        "",
        "Events are listed in the order they fire. Per-batch events are marked (batch).",
        "Keras' names are aliases; `hookline.keras.Callback` receives `(epoch|batch, logs)`.",
        "",
    ]
    titles = {"train": "Training (`Trainer.fit`)", "val": "Validation (`Validator`)",
              "predict": "Prediction (`Predictor`)", "export": "Export (`Exporter`)",
              "any": "Any run"}
    for run, title in titles.items():
        lines += [f"## {title}", "", "| event | fires | ready |", "|---|---|---|"]
        for event in EVENTS:
            if event.run == run:
                mark = " (batch)" if event.per_batch else ""
                lines.append(f"| `{event.name}`{mark} | {event.when} | {event.ready} |")
        lines.append("")
    lines += ["## Keras aliases", "", "| Keras name | hookline event |", "|---|---|"]
    lines += [f"| `{alias}` | `{name}` |" for alias, name in ALIASES.items()]
    lines += ["", "## Names from other frameworks", "",
              ("Not accepted as they are (their signatures or moments differ): registering "
               "one raises `ValueError` naming the hookline event to use. Lightning's hooks "
               "that share hookline's name (`on_train_epoch_end`, `on_train_batch_end`...) "
               "are accepted, with hookline's signature `(self, engine)`; Lightning's "
               "`(trainer, pl_module, ...)` is an error at registration."), "",
              "| name | from | hookline event | note |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {ported.framework} | "
              f"{' or '.join(f'`{event}`' for event in ported.events)} | {ported.note} |"
              for name, ported in PORTED_NAMES.items()]
    lines += ["", "## Order of one fit", "", "```", FIT_ORDER.strip(), "```", ""]
    return "\n".join(lines)


# The documented order of a fit; tests/test_event_order.py checks recorded runs against it.
FIT_ORDER = """
on_pretrain_routine_start
on_pretrain_routine_end
on_train_start
for each epoch:
    on_train_epoch_start
    for each batch (the training step: the default or yours):
        on_train_batch_start
        on_after_forward
        on_after_loss
        on_after_backward
        when a step is due (every `accumulate` batches, and at the epoch's last batch):
            optimizer_step
            on_params_update
            on_before_zero_grad
        every val_check_interval batches (not at the epoch's last batch):
            on_val_start ... on_val_end (a validation, as below)
        on_train_batch_end
        after that validation: on_mid_epoch_val_end
    on_train_epoch_end
    if there is validation data:
        on_val_start
        for each batch: on_val_batch_start, on_val_batch_end
        on_val_end
    if save_dir is set: on_model_save
    on_fit_epoch_end
on_train_end
teardown
(on an exception: on_exception, then teardown; the exception is re-raised)
"""

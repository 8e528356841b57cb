"""Registration-time checks of a callback's hook methods: names and signatures.

A hook that is misspelt, named after another framework's event, or written with the other
door's signature would otherwise be skipped or called with the wrong arguments (the trainer
arriving as Keras' ``epoch``). These checks turn each of those into an error naming the method
and what to write instead, when the callback is registered.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from hookline.events import ALIASES, EVENT_NAMES, PORTED_NAMES, ported_hint
from hookline.user_warning import warn

__all__ = ["check_keras_function", "check_keras_methods", "check_model_hooks",
           "check_native_signature"]

# Parameter names that give away Keras' (epoch | batch, logs) signature.
_KERAS_PARAMETERS = frozenset({"logs", "epoch", "batch"})
# Parameter names that give away a hookline hook, which receives the engine.
_ENGINE_PARAMETERS = frozenset({"trainer", "engine", "validator", "predictor", "exporter"})
# Attributes of the callback bases that start with "on_" but are not hooks.
NOT_HOOKS = frozenset({"on_error"})


def _signature(method: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(method)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: nothing to check


def _where(owner: Any, name: str, signature: inspect.Signature) -> str:
    return f"{type(owner).__qualname__}.{name}{signature}"


def check_native_signature(owner: Any, name: str, method: Callable[..., Any], *,
                           label: str | None = None) -> None:
    """Raise TypeError when a hook of a native callback cannot be called as ``hook(engine)``
    or is written with Keras' or Lightning's signature. ``label`` names a function
    registered on an event (``add_callback('on_epoch_end', fn)``) instead of a method."""
    signature = _signature(method)
    if signature is None:
        return
    names = list(signature.parameters)
    try:
        signature.bind(object())
        fits = True
    except TypeError:
        fits = False
    if fits and not (_KERAS_PARAMETERS & set(names)):
        return
    where = f"{label}: {_describe(method)}{signature}" if label else \
        _where(owner, name, signature)
    if _KERAS_PARAMETERS & set(names):
        keras = "hookline.keras.LambdaCallback" if label else "hookline.keras.Callback"
        hint = (f"that is Keras' signature: use {keras}, whose hooks receive (epoch | batch, "
                f"logs), or take (trainer) and read trainer.epoch and trainer.metrics")
    elif "pl_module" in names or "stage" in names or len(names) > 1:
        hint = ("that looks like Lightning's signature (trainer, pl_module, ...): hookline "
                f"passes only the engine; write {name}(self, trainer) and use trainer.model, "
                f"trainer.batch, trainer.batch_i")
    else:
        hint = f"write {name}(self, trainer)"
    raise TypeError(f"{where} cannot be a hookline hook: hookline calls every hook with one "
                    f"argument, the engine; {hint}")


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def check_keras_function(name: str, fn: Callable[..., Any], kind: str) -> None:
    """Raise TypeError when a function given to ``hookline.keras.LambdaCallback`` cannot take
    the arguments Keras passes: ``fn(logs)`` for kind "plain"/"metrics", else
    ``fn(epoch_or_batch, logs)``."""
    signature = _signature(fn)
    if signature is None:
        return
    arguments: tuple[Any, ...] = ({},) if kind in ("plain", "metrics") else (0, {})
    try:
        signature.bind(*arguments)
        return
    except TypeError:
        pass
    expected = "lambda logs: ..." if len(arguments) == 1 else \
        f"lambda {'epoch' if 'epoch' in kind else 'batch'}, logs: ..."
    raise TypeError(f"hookline.keras.LambdaCallback({name}={_describe(fn)}{signature}): Keras "
                    f"calls it as {expected}; for a function that takes the trainer use "
                    f"hookline.LambdaCallback")


def check_keras_methods(callback: Any, base: type, hooks: Mapping[str, tuple[str, str]]) -> None:
    """Raise for a Keras-style callback whose ``on_*`` methods are not Keras' (a typo, a
    hookline or Lightning name) or cannot take the arguments Keras passes.

    ``hooks`` maps each Keras method to ``(hookline event, kind)``; kind "plain" methods are
    called as ``method(logs=...)``, the others as ``method(epoch_or_batch, logs=...)``.
    """
    cls = type(callback)
    for name in dir(cls):
        if not name.startswith("on_") or name in NOT_HOOKS:
            continue
        attribute = getattr(cls, name)
        if not callable(attribute):
            continue
        if name not in hooks:
            raise ValueError(f"{cls.__qualname__}.{name} is not a Keras callback method, so "
                             f"it would never be called. {_keras_hint(name, hooks)}")
        if attribute is getattr(base, name, None):
            continue
        _check_keras_signature(callback, name, hooks[name][1])


def _keras_hint(name: str, hooks: Mapping[str, tuple[str, str]]) -> str:
    """What a hookline.keras.Callback method called ``name`` should be called instead."""
    ported = PORTED_NAMES.get(name)
    if ported is not None:
        keras = [method for method, (hooked, _) in hooks.items() if hooked in ported.events]
        if keras:
            return f"{name!r} is {ported.framework}'s name; Keras' name for it is " \
                   f"{' or '.join(keras)}."
        return f"{ported_hint(name)} Subclass hookline.Callback for hookline's events."
    event = name if name in EVENT_NAMES else ALIASES.get(name)
    if event is not None:
        keras = [method for method, (hooked, _) in hooks.items() if hooked == event]
        also = f" Keras' name for that moment is {' or '.join(keras)}." if keras else ""
        return (f"{name!r} is a hookline event: hookline.keras.Callback receives Keras' "
                f"methods only; subclass hookline.Callback for hookline's events "
                f"(hook(self, trainer)).{also}")
    close = difflib.get_close_matches(name, list(hooks), n=3, cutoff=0.6)
    return (f"Did you mean {' or '.join(close)}?" if close else
            f"The Keras methods are {', '.join(hooks)}.")


def _check_keras_signature(callback: Any, name: str, kind: str) -> None:
    method = getattr(callback, name)
    signature = _signature(method)
    if signature is None:
        return
    names = list(signature.parameters)
    try:
        if kind == "plain" or kind == "metrics":
            signature.bind(logs={})
        else:
            signature.bind(0, logs={})
        fits = True
    except TypeError:
        fits = False
    if fits and not (_ENGINE_PARAMETERS & set(names)):
        return
    expected = f"{name}(self, logs=None)" if kind in ("plain", "metrics") else \
        f"{name}(self, {'epoch' if 'epoch' in kind else 'batch'}, logs=None)"
    if _ENGINE_PARAMETERS & set(names) or (len(names) == 1 and "logs" not in names):
        hint = (f"that is hookline's native signature (self, trainer): subclass "
                f"hookline.Callback for it, or write {expected}")
    else:
        hint = f"write {expected} (logs is passed by keyword)"
    raise TypeError(f"{_where(callback, name, signature)} cannot take the arguments Keras "
                    f"passes ({expected}); {hint}")


# Lightning's LightningModule methods that hookline does run when a model defines them.
_MODEL_METHODS_USED = frozenset({"training_step", "validation_step", "predict_step"})


def check_model_hooks(model: Any, *, optimizer: Any) -> None:
    """Warn about methods of ``model`` that look like hooks hookline would call but does not:
    hook-named methods (a ported LightningModule's ``on_train_epoch_end(self)``) and
    ``configure_optimizers`` while the default optimizer is used. Both would otherwise be
    skipped without a word, and the run would train differently from the one ported."""
    owner = type(model)
    names = {name for klass in owner.__mro__ if klass.__module__.split(".")[0] not in
             ("torch", "hookline", "builtins") for name in vars(klass)}
    hooks = sorted(name for name in names - _MODEL_METHODS_USED
                   if name.startswith("on_")
                   and (name in EVENT_NAMES or name in ALIASES or name in PORTED_NAMES)
                   and callable(getattr(owner, name, None)))
    if hooks:
        listed = ", ".join(f"{owner.__qualname__}.{name}" for name in hooks)
        warn(f"{listed}: hookline calls hooks on callbacks, not on the model, so "
             f"{'this is' if len(hooks) == 1 else 'these are'} never called. Move "
             f"{'it' if len(hooks) == 1 else 'them'} into a hookline.Callback, "
             f"whose hooks receive the trainer (trainer.model is the model)",
             RuntimeWarning)
    if "configure_optimizers" in names and isinstance(optimizer, str) and optimizer == "adam":
        warn(f"{owner.__qualname__}.configure_optimizers() is not called by hookline: "
             f"this run trains with the default optimizer ('adam'). Pass "
             f"optimizer=model.configure_optimizers() (its optimizer, or the "
             f"'optimizer' entry of the dict it returns)", RuntimeWarning)

"""How a model file records the architecture: an importable target plus plain arguments.

A model file never holds pickled code. It names the ``nn.Module`` class (or a factory
function) as ``"module:qualname"`` and keeps the constructor's arguments as plain data, and
``hookline.load_model`` imports that name and calls it with them. The arguments come from, in
order: ``Model.save(config=...)``; what ``@hookline.serializable`` recorded when the module
was built; the module's ``get_config()`` (Keras' convention); nothing, when the constructor
takes no arguments. Otherwise saving raises, naming the arguments it could not know.

Loading calls only an ``nn.Module`` subclass or a function marked ``@hookline.serializable``,
so a file cannot make ``load_model`` call an arbitrary function (``os:system``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["ArchitectureError", "build", "check_rebuilds", "describe", "record", "resolve",
           "serializable"]

_RECORD = "_hookline_architecture"  # the attribute @serializable sets on a built module
_MARK = "__hookline_serializable__"
_PLAIN = (int, float, str, bool, type(None))
Target = TypeVar("Target", bound=Callable[..., Any])


class ArchitectureError(ValueError):
    """The architecture of a model cannot be recorded, or a recorded one cannot be rebuilt."""


def _plain_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not plain data (numbers, strings, bools, None, lists/dicts of them)."""
    if isinstance(value, _PLAIN):
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _plain_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            problem = _plain_problem(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__qualname__} ({value!r:.60}), not plain data"


def serializable(target: Target) -> Target:
    """Mark an ``nn.Module`` class or a factory function so its models record how they were
    built, and so ``load_model`` may call it.

    Example::

        @hookline.serializable
        def make_net(hidden=32):
            return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

        hookline.Model(make_net(hidden=64), loss="cross_entropy").save("net.hookline")
    """
    if isinstance(target, type):
        if not issubclass(target, nn.Module):
            raise TypeError(f"@serializable marks nn.Module classes or factory functions, "
                            f"got the class {target.__qualname__}")
        original_init = target.__init__

        @functools.wraps(original_init)
        def init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            if type(self) is target:  # a subclass records its own arguments, or none
                object.__setattr__(self, _RECORD, _bind(original_init, (self, *args), kwargs,
                                                        _name(target), skip_first=True))

        target.__init__ = init  # type: ignore[method-assign]
        setattr(target, _MARK, True)
        return target
    if not callable(target):
        raise TypeError(f"@serializable marks nn.Module classes or factory functions, got "
                        f"{target!r}")

    @functools.wraps(target)
    def factory(*args: Any, **kwargs: Any) -> Any:
        module = target(*args, **kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"{_name(target)} is marked @serializable but returned a "
                            f"{type(module).__name__}, not an nn.Module")
        object.__setattr__(module, _RECORD, _bind(target, args, kwargs, _name(target)))
        return module

    setattr(factory, _MARK, True)
    return factory  # type: ignore[return-value]


def _name(target: Any) -> str:
    return f"{target.__module__}:{target.__qualname__}"


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str,
          *, skip_first: bool = False) -> dict[str, Any]:
    """The arguments of one call by name, defaults filled in, or the reason they cannot be."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    config: dict[str, Any] = {}
    for index, (key, value) in enumerate(bound.arguments.items()):
        if skip_first and index == 0:
            continue
        kind = bound.signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return {"target": name, "problem": f"{name} was called with *{key} "
                        f"positional arguments, which cannot be recorded by name"}
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[key] = value
    return {"target": name, "config": config}


def describe(module: nn.Module, *, architecture: Any = None,
             config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"target": "module:qualname", "config": {...}}`` for ``module``, or raise
    ArchitectureError saying what is missing and how to provide it."""
    recorded = getattr(module, _RECORD, None)
    named = architecture if callable(architecture) else type(module)
    _check_not_local(_name(named))
    expected: Any = type(module)  # what the target must import as (None: checked when built)
    if architecture is not None:
        target = _name(architecture) if callable(architecture) else str(architecture)
        expected = architecture if callable(architecture) else None
        if config is None and recorded is not None and recorded["target"] == target:
            config = recorded.get("config")
        if config is None:
            config = _no_argument_config(architecture if callable(architecture)
                                         else resolve(target), target)
    elif config is not None:
        target = _name(type(module))
    elif recorded is not None:
        if "problem" in recorded:
            raise ArchitectureError(f"cannot record the architecture: {recorded['problem']}; "
                                    f"pass Model.save(path, config={{...}})")
        target, config, expected = recorded["target"], recorded["config"], None
    elif callable(getattr(module, "get_config", None)):
        target, config = _name(type(module)), module.get_config()  # type: ignore[operator]
        if not isinstance(config, dict):
            raise ArchitectureError(f"{target}.get_config() returned {type(config).__name__}; "
                                    f"it must return a dict of constructor arguments")
    else:
        target = _name(type(module))
        config = _no_argument_config(type(module), target)
    problem = _plain_problem(config, "config")
    if problem:
        raise ArchitectureError(f"cannot record the architecture {target}: {problem}. A "
                                f"model file keeps constructor arguments as plain data "
                                f"(numbers, strings, bools, None, lists and dicts of them)")
    _check_importable(target, expected)
    return {"target": target, "config": dict(config)}


def _no_argument_config(architecture: Any, target: str) -> dict[str, Any]:
    """An empty config when the constructor takes no argument; else explain what to do."""
    if isinstance(architecture, type) and \
            getattr(architecture, "__init__", None) is getattr(nn.Module, "__init__", None):
        return {}  # a module without its own __init__
    try:
        parameters = inspect.signature(architecture).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    if not parameters:
        return {}
    listed = ", ".join(str(parameter) for parameter in parameters.values())
    raise ArchitectureError(
        f"cannot record how {target} was built: its constructor takes ({listed}) and hookline "
        f"does not know the values used. Pass them: model.save(path, config={{...}}); or mark "
        f"the class or its factory @hookline.serializable (it records them when the model is "
        f"built); or give the class a get_config() returning them. For an nn.Sequential, "
        f"save a @hookline.serializable factory function that builds it")


def _check_not_local(target: str) -> None:
    if "<locals>" in target:
        raise ArchitectureError(f"cannot record the architecture {target}: it is defined "
                                f"inside a function, so it cannot be imported when the file "
                                f"is loaded; define it at the top level of a module")


def _check_importable(target: str, expected: Any) -> None:
    _check_not_local(target)
    try:
        found = resolve(target)
    except ArchitectureError as error:
        raise ArchitectureError(f"cannot record the architecture: {error}") from None
    if expected is not None and found is not expected and \
            getattr(found, "__wrapped__", None) is not expected:
        raise ArchitectureError(f"cannot record the architecture {target}: importing it gives "
                                f"{found!r}, not {expected!r}; save a class or a factory that "
                                f"its module defines under that name")


def _import(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise ArchitectureError(f"{target!r} is not 'module:qualname'")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ArchitectureError(f"{target}: module {module_name!r} cannot be imported "
                                f"({error})") from error
    for part in qualname.split("."):
        if not hasattr(found, part):
            where = " (the file was saved from a script: load it from that script, or move " \
                    "the class into a module)" if module_name == "__main__" else ""
            raise ArchitectureError(f"{target}: {module_name!r} has no attribute "
                                    f"{qualname!r}{where}")
        found = getattr(found, part)
    return found


def resolve(target: str) -> Callable[..., nn.Module]:
    """Import ``target`` and check it is something a file may ask hookline to call."""
    found = _import(target)
    if isinstance(found, type) and issubclass(found, nn.Module):
        return found
    if callable(found) and getattr(found, _MARK, False):
        return found  # type: ignore[no-any-return]
    raise ArchitectureError(f"refused to build {target}: it is {found!r}, neither an "
                            f"nn.Module class nor a @hookline.serializable factory; a model "
                            f"file may only name those (mark a factory function with "
                            f"@hookline.serializable)")


def build(spec: dict[str, Any]) -> nn.Module:
    """The module a recorded ``describe`` spec stands for, built afresh."""
    target, config = spec.get("target"), spec.get("config")
    if not isinstance(target, str) or not isinstance(config, dict):
        raise ArchitectureError("the recorded architecture is damaged (no target or config)")
    factory = resolve(target)
    try:
        module = factory(**config)
    except TypeError as error:
        raise ArchitectureError(f"{target}(**{config!r}) failed: {error}; the class changed "
                                f"since the file was saved?") from error
    if not isinstance(module, nn.Module):
        raise ArchitectureError(f"{target} returned {type(module).__name__}, not an nn.Module")
    return module


def record(module: nn.Module, spec: dict[str, Any]) -> None:
    """Remember on a rebuilt module how it was built, so saving it again needs nothing."""
    object.__setattr__(module, _RECORD, spec)


def check_rebuilds(spec: dict[str, Any], module: nn.Module) -> None:
    """Raise ArchitectureError when ``spec`` builds a module whose weights differ in names or
    shapes from ``module``'s (a wrong ``config=``), so the mistake shows when saving, not
    when loading. The module is built on the meta device: no memory, no initialisation."""
    try:
        with torch.device("meta"):
            rebuilt = build(spec)
    except ArchitectureError:
        raise
    except Exception:  # noqa: BLE001 - some constructors need real tensors: checked at load
        return
    own, other = module.state_dict(), rebuilt.state_dict()
    shapes = [f"{key} ({tuple(other[key].shape)} rebuilt, {tuple(own[key].shape)} here)"
              for key in own if key in other and other[key].shape != own[key].shape]
    missing = [key for key in own if key not in other]
    extra = [key for key in other if key not in own]
    parts = [f"{label}: {', '.join(keys[:8])}" for label, keys in (
        ("shape mismatch", shapes), ("not rebuilt", missing), ("only rebuilt", extra)) if keys]
    if parts:
        raise ArchitectureError(f"the recorded architecture {spec['target']}(**{spec['config']!r}) "
                                f"does not rebuild this model ({'; '.join(parts)}); pass the "
                                f"arguments the model was built with")

"""The public surface is explicit, and the engine knows no built-in callback by name."""

from __future__ import annotations

import ast
from pathlib import Path

import hookline
import hookline.callbacks

SRC = Path(hookline.__file__).parent


def test_all_is_sorted_and_importable():
    assert hookline.__all__ == sorted(hookline.__all__, key=lambda n: (n.upper() != n, n))
    for name in hookline.__all__:
        assert hasattr(hookline, name), name


def test_core_names_are_public():
    for name in ("Trainer", "Validator", "Predictor", "Exporter", "Model", "Callback",
                 "LambdaCallback", "History", "filtered", "EVENTS"):
        assert name in hookline.__all__


def test_engine_does_not_name_built_in_callbacks():
    built_ins = {name for name in hookline.callbacks.__all__}
    for path in sorted((SRC / "engine").glob("*.py")) + [SRC / "callback_list.py",
                                                         SRC / "events.py"]:
        tree = ast.parse(path.read_text())
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  for alias in node.names}
        assert not names & built_ins, f"{path.name} names {names & built_ins}"


def test_public_api_has_type_hints():
    import inspect
    for cls in (hookline.Trainer, hookline.Model, hookline.Predictor, hookline.Exporter):
        signature = inspect.signature(cls.__init__)
        missing = [p.name for p in signature.parameters.values()
                   if p.name != "self" and p.annotation is inspect.Parameter.empty
                   and p.kind is not p.VAR_KEYWORD]
        assert not missing, f"{cls.__name__}: {missing}"

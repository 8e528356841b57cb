"""The Exporter: write a model to a deployable file, fire on_export_start/end, check the file."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree

from hookline.checkpoint import atomic_path, save_weights
from hookline.engine.base import Engine
from hookline.module_modes import ModuleModes
from hookline.signature import Signature, example_from_signature, load_signature, signature_of

__all__ = ["EXPORT_FORMATS", "Exporter"]

EXPORT_FORMATS = {"pt": ".pt", "safetensors": ".safetensors", "torchscript": ".torchscript",
                  "onnx": ".onnx"}
_NEEDS_INPUT = ("torchscript", "onnx")
Call = tuple[tuple[Any, ...], dict[str, Any]]


class Exporter(Engine):
    """Export ``model`` as ``format``: "pt" (state_dict), "safetensors", "torchscript" or "onnx".

    TorchScript and ONNX trace the model and need its inputs' structure: ``example_input`` (one
    batch: a tensor, a tuple of positional inputs, or a dict of named inputs) or ``signature``
    (``trainer.input_signature``, recorded by fit, or a weights/checkpoint file that keeps one;
    see ``hookline.signature``). Several and named inputs are exported as such: ONNX inputs
    take the dict keys or the ``forward`` argument names, and every input's first dimension
    is the dynamic batch axis. With ``check=True`` an ONNX file is run in onnxruntime and a
    TorchScript file reloaded, and their outputs compared with PyTorch's; a mismatch raises.
    Callbacks see ``format``, ``file`` and, after on_export_end, ``max_abs_diff``.
    """

    def __init__(self, model: nn.Module, *, format: str = "pt", file: str | Path | None = None,
                 example_input: Any = None, callbacks: Any = (), check: bool = True,
                 opset: int | None = None, tolerance: float = 1e-4,
                 signature: Signature | str | os.PathLike[str] | None = None) -> None:
        super().__init__(callbacks)
        if format not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {format!r}; use one of "
                             f"{sorted(EXPORT_FORMATS)}")
        if isinstance(signature, (str, os.PathLike)):
            source, signature = signature, load_signature(signature)
            if signature is None and example_input is None and format in _NEEDS_INPUT:
                raise ValueError(f"{source} keeps no input signature (it was written before "
                                 f"fit saw a batch, or by an older hookline); pass "
                                 f"example_input= (one batch of inputs)")
        if format in _NEEDS_INPUT and example_input is None and signature is None:
            raise ValueError(f"export to {format} traces the model and needs example_input= "
                             f"(one batch of inputs, e.g. x[:1]) or signature= (fit records "
                             f"trainer.input_signature; weights files keep it)")
        self.model = model
        self.format = format
        self.file = Path(file) if file is not None else Path("model" + EXPORT_FORMATS[format])
        self.example_input = example_input
        self.signature = signature
        self.args.format, self.args.check, self.args.opset = format, check, opset
        self.tolerance = tolerance
        self.max_abs_diff: float | None = None

    def export(self) -> Path:
        """Write the file (atomically) and return its path."""
        return self._run_top_level(self._export)

    __call__ = export

    def _export(self) -> Path:
        fire = self.callbacks.fire
        fire("on_export_start", self)
        modes = ModuleModes(self.model)
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        self.model.eval()
        try:
            writer = getattr(self, f"_write_{self.format}")
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.file) as temp:
                writer(temp)
            if self.args.check and self.format in _NEEDS_INPUT:
                self.max_abs_diff = self._check()
        finally:
            modes.restore()
            self.model.to(device)
        fire("on_export_end", self)
        return self.file

    def _write_pt(self, path: Path) -> None:
        save_weights(self.model, path)

    def _write_safetensors(self, path: Path) -> None:
        from safetensors.torch import save_model
        save_model(self.model, str(path))

    def _write_torchscript(self, path: Path) -> None:
        args, kwargs = self._call()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # still the TorchScript route
            # strict=False: a dict or list output (a detector's maps) is traced as it is
            if kwargs:
                traced = torch.jit.trace(self.model.cpu(), example_kwarg_inputs=kwargs,
                                         strict=False)
            else:
                traced = torch.jit.trace(self.model.cpu(), args, strict=False)
        traced.save(str(path))

    def _write_onnx(self, path: Path) -> None:
        args, kwargs = self._call()
        batch = torch.export.Dim("batch", min=1)
        names = self._input_names(args, kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # several inputs share the one batch axis; torch says so for each
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            program = torch.onnx.export(
                self.model.cpu(), args, kwargs=kwargs or None, dynamo=True, verbose=False,
                opset_version=self.args.opset, input_names=names,
                output_names=self._output_names(args, kwargs),
                dynamic_shapes=self._dynamic_shapes(args, kwargs, batch))
        if program is None:  # only the legacy dynamo=False route returns nothing
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNXProgram, so "
                               "there is nothing to save; check that the installed torch "
                               "supports the dynamo exporter (pip install 'hookline[export]')")
        program.save(str(path))

    # --- the inputs ---------------------------------------------------------------------------
    def _call(self) -> Call:
        """``(args, kwargs)`` on the CPU: from example_input, else from the signature; named
        inputs in ``forward``'s order (the order the exporter gives the ONNX inputs)."""
        if self.example_input is None:
            args, kwargs = example_from_signature(self.signature)  # type: ignore[arg-type]
        else:
            example = _detached(self.example_input)
            if isinstance(example, Mapping):
                args, kwargs = (), dict(example)
            elif isinstance(example, (tuple, list)):
                args, kwargs = tuple(example), {}
            else:
                args, kwargs = (example,), {}
        try:
            order = list(inspect.signature(self.model.forward).parameters)
        except (TypeError, ValueError):
            return args, kwargs
        rank = {name: i for i, name in enumerate(order)}
        return args, dict(sorted(kwargs.items(), key=lambda item: rank.get(item[0], len(rank))))

    def _bound(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Each input under its ``forward`` argument name, in call order."""
        try:
            bound = inspect.signature(self.model.forward).bind(*args, **kwargs)
        except (TypeError, ValueError):
            names = signature_of(args, {}, self.model)["names"]
            return {**dict(zip(names, args)), **kwargs}
        values = dict(bound.arguments)
        for name, parameter in inspect.signature(self.model.forward).parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD and name in values:
                values.update(values.pop(name))  # **kwargs: each key is an input
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL and name in values:
                values.update({f"{name}_{i}": item for i, item in enumerate(values.pop(name))})
        return values

    def _input_names(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        names: list[str] = []
        for name, value in self._bound(args, kwargs).items():
            leaves, _ = _pytree.tree_flatten(value)
            tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
            if len(tensors) == 1 and isinstance(value, torch.Tensor):
                names.append(name)
            else:
                names += [f"{name}_{i}" for i in range(len(tensors))]
        return names

    def _output_names(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        with torch.no_grad():
            output = self.model.cpu()(*args, **kwargs)
        if isinstance(output, torch.Tensor):
            return ["output"]
        if isinstance(output, Mapping) and all(isinstance(v, torch.Tensor)
                                               for v in output.values()):
            return [str(key) for key in output]
        leaves, _ = _pytree.tree_flatten(output)
        return [f"output_{i}" for i in range(len(leaves))]

    def _dynamic_shapes(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                        batch: Any) -> Any:
        """The batch axis of every tensor input dynamic, in torch.export's nesting."""
        def mark(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return {0: batch} if value.dim() else None
            if isinstance(value, Mapping):
                return {key: mark(item) for key, item in value.items()}
            if isinstance(value, (tuple, list)):
                return type(value)(mark(item) for item in value)
            return None
        if kwargs:
            return {name: mark(value) for name, value in self._bound(args, kwargs).items()}
        return tuple(mark(value) for value in args)

    # --- the check ----------------------------------------------------------------------------
    def _check(self) -> float:
        args, kwargs = self._call()
        model = self.model.cpu()
        with torch.no_grad():
            expected = [leaf.numpy() for leaf in _pytree.tree_flatten(model(*args, **kwargs))[0]
                        if isinstance(leaf, torch.Tensor)]
        if self.format == "onnx":
            import onnxruntime
            session = onnxruntime.InferenceSession(str(self.file),
                                                   providers=["CPUExecutionProvider"])
            tensors = [leaf for leaf in _pytree.tree_flatten(
                list(self._bound(args, kwargs).values()))[0] if isinstance(leaf, torch.Tensor)]
            wanted = [node.name for node in session.get_inputs()]
            given = dict(zip(self._input_names(args, kwargs), tensors))
            actual = session.run(None, {name: given[name].numpy() for name in wanted})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded = torch.jit.load(str(self.file)).eval()
                output = loaded(*args, **kwargs)
            actual = [leaf.detach().numpy() for leaf in _pytree.tree_flatten(output)[0]
                      if isinstance(leaf, torch.Tensor)]
        if len(actual) != len(expected):
            raise RuntimeError(f"the exported {self.format} file {self.file} gives "
                               f"{len(actual)} outputs where the PyTorch model gives "
                               f"{len(expected)}")
        difference, scale = 0.0, 1.0
        for got, want in zip(actual, expected):
            if want.size:
                difference = max(difference, float(np.max(np.abs(got - want))))
                scale = max(scale, float(np.max(np.abs(want))))
        if not difference <= self.tolerance * scale:
            raise RuntimeError(f"the exported {self.format} file {self.file} disagrees with the "
                               f"PyTorch model by up to {difference:.3g}; the model may use "
                               f"operations that do not trace (data-dependent control flow)")
        return difference


def _detached(value: Any) -> Any:
    """The example on the CPU, out of the graph, numpy arrays as tensors."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, Mapping):
        return {key: _detached(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(item) for item in value)
    return value

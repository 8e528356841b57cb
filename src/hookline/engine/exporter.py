"""The Exporter: write a model to a deployable file, fire on_export_start/end, check the file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hookline.checkpoint import atomic_path, save_weights
from hookline.engine.base import Engine

__all__ = ["EXPORT_FORMATS", "Exporter"]

EXPORT_FORMATS = {"pt": ".pt", "safetensors": ".safetensors", "torchscript": ".torchscript",
                  "onnx": ".onnx"}
_NEEDS_INPUT = ("torchscript", "onnx")


class Exporter(Engine):
    """Export ``model`` as ``format``: "pt" (state_dict), "safetensors", "torchscript" or "onnx".

    TorchScript and ONNX trace the model and need ``example_input`` (one batch). With
    ``check=True`` an ONNX file is run in onnxruntime and a TorchScript file reloaded, and their
    outputs compared with PyTorch's; a mismatch raises. Callbacks see ``format``, ``file`` and,
    after on_export_end, ``max_abs_diff`` (the check's largest difference).
    """

    def __init__(self, model: nn.Module, *, format: str = "pt", file: str | Path | None = None,
                 example_input: torch.Tensor | None = None, callbacks: Any = (),
                 check: bool = True, opset: int | None = None, tolerance: float = 1e-4) -> None:
        super().__init__(callbacks)
        if format not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {format!r}; use one of "
                             f"{sorted(EXPORT_FORMATS)}")
        if format in _NEEDS_INPUT and example_input is None:
            raise ValueError(f"export to {format} traces the model and needs example_input= "
                             f"(one batch of inputs, e.g. x[:1])")
        self.model = model
        self.format = format
        self.file = Path(file) if file is not None else Path("model" + EXPORT_FORMATS[format])
        self.example_input = example_input
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
        was_training = self.model.training
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        self.model.eval()
        try:
            writer = getattr(self, f"_write_{self.format}")
            with atomic_path(self.file) as temp:
                writer(temp)
            if self.args.check and self.format in _NEEDS_INPUT:
                self.max_abs_diff = self._check()
        finally:
            self.model.train(was_training)
            self.model.to(device)
        fire("on_export_end", self)
        return self.file

    def _write_pt(self, path: Path) -> None:
        save_weights(self.model, path)

    def _write_safetensors(self, path: Path) -> None:
        from safetensors.torch import save_model
        save_model(self.model, str(path))

    def _write_torchscript(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # still the TorchScript route
            traced = torch.jit.trace(self.model, self._cpu_input())
        traced.save(str(path))

    def _write_onnx(self, path: Path) -> None:
        example = self._cpu_input()
        batch = torch.export.Dim("batch", min=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                self.model.cpu(), (example,), dynamo=True, verbose=False,
                opset_version=self.args.opset, input_names=["input"], output_names=["output"],
                dynamic_shapes=({0: batch},))
        if program is None:  # only the legacy dynamo=False route returns nothing
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNXProgram, so "
                               "there is nothing to save; check that the installed torch "
                               "supports the dynamo exporter (pip install 'hookline[export]')")
        program.save(str(path))

    def _cpu_input(self) -> torch.Tensor:
        return self.example_input.detach().cpu()  # type: ignore[union-attr]

    def _check(self) -> float:
        example = self._cpu_input()
        model = self.model.cpu()
        with torch.no_grad():
            expected = model(example).numpy()
        if self.format == "onnx":
            import onnxruntime
            session = onnxruntime.InferenceSession(str(self.file),
                                                   providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            actual = session.run(None, {name: example.numpy()})[0]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                actual = torch.jit.load(str(self.file)).eval()(example).detach().numpy()
        difference = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
        if not difference <= self.tolerance * max(1.0, float(np.max(np.abs(expected)))):
            raise RuntimeError(f"the exported {self.format} file {self.file} disagrees with the "
                               f"PyTorch model by up to {difference:.3g}; the model may use "
                               f"operations that do not trace (data-dependent control flow)")
        return difference

"""``summary()``: a model's layers, their output shapes and parameter counts.

Output shapes come from one forward pass on an example input, with a forward hook on each
listed layer, in eval mode and without gradients; the modules' train/eval modes and every
random generator are restored afterwards, so printing a summary never changes a run. Without
an example input the shapes are shown as "?".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hookline.module_modes import ModuleModes
from hookline.rng import get_rng_state, set_rng_state

__all__ = ["LayerSummary", "Summary", "first_input", "model_example", "summarize"]


@dataclass
class LayerSummary:
    """One row: a submodule, its output shape ("?" when unknown) and its parameters."""

    name: str
    type: str
    output_shape: str
    params: int
    trainable: int


@dataclass
class Summary:
    """What ``summary()`` prints; ``str(summary)`` is the table."""

    model: str
    layers: list[LayerSummary]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    params_bytes: int
    note: str = ""
    input_shape: str = "?"

    def __str__(self) -> str:
        header = ("", "Name", "Type", "Output shape", "Params")
        rows = [(str(i), layer.name, layer.type, layer.output_shape, f"{layer.params:,}")
                for i, layer in enumerate(self.layers)]
        widths = [max(len(row[col]) for row in [header, *rows]) for col in range(5)]

        def line(row: tuple[str, ...]) -> str:
            return " | ".join(cell.ljust(width) if col < 4 else cell.rjust(width)
                              for col, (cell, width) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(line(header))
        lines = [f"Model: {self.model} (input {self.input_shape})", rule, line(header), rule]
        lines += [line(row) for row in rows] + [rule]
        lines += [f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.non_trainable_params:,}",
                  f"Params size: {self.params_bytes / 2**20:.2f} MB"]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_shape(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_shape(item)}" for key, item in value.items()) + "}"
    return type(value).__name__


def _layers(module: nn.Module, max_depth: int) -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_modules():
        if name and name.count(".") < max_depth:
            yield name, child


def _device(module: nn.Module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def summarize(module: nn.Module, example_input: Any = None, *, max_depth: int = 1,
              strict: bool = True) -> Summary:
    """The summary of ``module``: submodules down to ``max_depth`` levels (1: its children).

    With ``example_input`` (one batch, as the model is called: ``module(example_input)``) the
    output shape of each layer is recorded in one forward pass. ``strict=False`` turns a
    failing forward pass into "?" shapes and a note instead of an exception.
    """
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError(f"summary(max_depth={max_depth!r}): max_depth must be an integer >= 1 "
                         f"(1 lists the model's direct children)")
    layers = list(_layers(module, max_depth))
    shapes: dict[str, str] = {}
    note, input_shape = "", "?"
    if example_input is not None:
        input_shape = _shape(example_input)
        if len(input_shape) > 120:  # a dict batch with a list per sample (boxes): shorten it
            input_shape = input_shape[:117] + "..."
        try:
            shapes = _output_shapes(module, layers, example_input)
        except Exception as error:  # reported, or re-raised when strict
            if strict:
                raise
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
            note = (f"output shapes unknown: the forward pass on the first batch failed "
                    f"({type(error).__name__}: {first}); a model with its own training "
                    f"step may take other inputs: pass summary(example_input=...)")
    else:
        note = "output shapes unknown (\"?\"): pass an example input, e.g. summary(x[:1])"
    rows = []
    for name, layer in layers:
        params = list(layer.parameters())
        rows.append(LayerSummary(name, type(layer).__name__, shapes.get(name, "?"),
                                 sum(p.numel() for p in params),
                                 sum(p.numel() for p in params if p.requires_grad)))
    unique = {id(p): p for p in module.parameters()}.values()  # tied weights count once
    total = sum(p.numel() for p in unique)
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    size = sum(p.numel() * p.element_size() for p in unique)
    return Summary(type(module).__name__, rows, total, trainable, total - trainable, size,
                   note, input_shape)


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _move(item, device) for key, item in value.items()}
    return value


def _output_shapes(module: nn.Module, layers: list[tuple[str, nn.Module]],
                   example_input: Any) -> dict[str, str]:
    shapes: dict[str, str] = {}

    def recorder(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            shapes.setdefault(name, _shape(output))  # a layer called twice: its first call
        return hook

    modes = ModuleModes(module)
    rng = get_rng_state()
    handles = [layer.register_forward_hook(recorder(name)) for name, layer in layers]
    try:
        module.eval()
        with torch.no_grad():
            module(_move(example_input, _device(module)))
    finally:
        for handle in handles:
            handle.remove()
        modes.restore()
        set_rng_state(rng)
    return shapes


def first_input(batches: Any) -> tuple[Any, str]:
    """The model input of the first sample of a batch stream, without disturbing a run:
    array data is sliced (no iteration); other data is iterated once with every random
    generator restored after; a one-shot iterator is left alone. Returns (input, note)."""
    from hookline.data import ArrayBatches
    if isinstance(batches, ArrayBatches):
        return batches.tensors[0][:1], ""
    source = getattr(batches, "source", batches)
    rng = get_rng_state()
    try:
        iterator = iter(source)
        if iterator is source:
            return None, ("output shapes unknown: the training data is a one-shot iterator, "
                          "which a summary must not consume; pass example_input")
        batch = next(iterator, None)
        del iterator
    finally:
        set_rng_state(rng)
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]  # the engine calls model(batch[0])
    if isinstance(batch, torch.Tensor):
        batch = batch[:1]
    return batch, ""


def model_example(model: Any) -> Any:
    """The example input a Keras-door Model knows: the last one given to ``summary``, the one
    loaded from its file, or the first sample of its last fit's training data."""
    example = getattr(model, "_example_input", None)
    if example is not None:
        return example
    trainer = getattr(model, "_trainer", None)
    data = trainer.train_data if trainer is not None else getattr(model, "_fit_data", None)
    if data is not None:  # the last fit's data, also after an evaluate or a predict
        return first_input(data)[0]
    return None


def trainer_summary(trainer: Any, example_input: Any = None, *, max_depth: int = 1) -> Summary:
    """A Trainer's model summary; shapes from ``example_input`` or the training data."""
    note = ""
    if example_input is None:
        example_input, note = first_input(trainer.train_data)
    summary = summarize(trainer.model, example_input, max_depth=max_depth, strict=False)
    if note:
        summary.note = note
    return summary

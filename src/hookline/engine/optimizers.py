"""Several optimizers (a GAN's generator and discriminator): naming them, choosing each
batch's, and keeping one optimizer's backward pass off the others' parameters.

``Trainer(optimizer=[opt_g, opt_d])`` or ``optimizer={"generator": opt_g, "discriminator":
opt_d}``. With automatic optimization every batch runs the training step once per optimizer,
in order (``trainer.optimizer_name`` / ``optimizer_index`` say which), backward with only that
optimizer's parameters requiring gradients (Lightning's ``toggle_optimizer``), then that
optimizer's step; ``optimizer_frequencies`` gives each optimizer a step every n batches
(``[1, 5]``: the second steps every fifth batch). With ``automatic_optimization=False`` the
step calls ``trainer.backward(loss)`` and ``trainer.step_optimizer("generator")`` itself.
Under fp16 one GradScaler serves every optimizer and is updated once per batch, after the
last optimizer stepped, as torch's AMP recipe requires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["OptimizerSet"]

Optimizer = torch.optim.Optimizer


class OptimizerSet:
    """The trainer's optimizers by name, in order, with their step frequencies."""

    def __init__(self, optimizers: dict[str, Optimizer], frequencies: Sequence[int], *,
                 uses_lr: bool = False) -> None:
        self.by_name = optimizers
        self.uses_lr = uses_lr  # one was built from its name with Trainer(lr=)
        self.names = list(optimizers)
        self.frequencies = list(frequencies)
        self._others = {name: _other_params(optimizer, optimizers.values())
                        for name, optimizer in optimizers.items()}

    @classmethod
    def build(cls, spec: Any, build_one: Callable[[Any], Optimizer],
              frequencies: Sequence[int] | Mapping[str, int] | None) -> OptimizerSet:
        """From ``Trainer(optimizer=...)``: one optimizer spec, a list or a dict of them."""
        specs = list(spec.values()) if isinstance(spec, Mapping) else list(spec) if \
            isinstance(spec, (list, tuple)) else [spec]
        uses_lr = any(isinstance(one, str) for one in specs)
        if isinstance(spec, Mapping):
            if not spec or not all(isinstance(key, str) and key for key in spec):
                raise ValueError("optimizer={...} maps names to optimizers, e.g. "
                                 "{'generator': opt_g, 'discriminator': opt_d}")
            named = {key: build_one(value) for key, value in spec.items()}
        elif isinstance(spec, (list, tuple)):
            if not spec:
                raise ValueError("optimizer=[] names no optimizer; pass at least one")
            named = {f"optimizer_{i}" if len(spec) > 1 else "optimizer": build_one(value)
                     for i, value in enumerate(spec)}
        else:
            named = {"optimizer": build_one(spec)}
        return cls(named, _frequencies(frequencies, list(named)), uses_lr=uses_lr)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, which: str | int | None) -> int:
        """The position of an optimizer named or numbered ``which`` (None: the only one)."""
        if which is None:
            if len(self.names) > 1:
                raise ValueError(f"the trainer has {len(self.names)} optimizers {self.names}; "
                                 f"name the one to step: trainer.step_optimizer('{self.names[0]}')")
            return 0
        if isinstance(which, int) and not isinstance(which, bool) and \
                0 <= which < len(self.names):
            return which
        if isinstance(which, str) and which in self.by_name:
            return self.names.index(which)
        raise ValueError(f"no optimizer {which!r}; the trainer's optimizers are {self.names} "
                         f"(or their indexes 0..{len(self.names) - 1})")

    def due(self, index: int, batch_i: int) -> bool:
        return batch_i % self.frequencies[index] == 0

    @contextlib.contextmanager
    def only(self, name: str) -> Iterator[None]:
        """While the block runs, the other optimizers' parameters need no gradient."""
        others = self._others[name]
        for parameter in others:
            parameter.requires_grad_(False)
        try:
            yield
        finally:
            for parameter in others:
                parameter.requires_grad_(True)

    def params_of(self, name: str) -> list[nn.Parameter]:
        return [p for group in self.by_name[name].param_groups for p in group["params"]]


def _other_params(optimizer: Optimizer, every: Any) -> list[nn.Parameter]:
    """Trainable parameters of the other optimizers that this one does not also hold."""
    own = {id(p) for group in optimizer.param_groups for p in group["params"]}
    seen: set[int] = set()
    others = []
    for other in every:
        for group in other.param_groups:
            for parameter in group["params"]:
                if id(parameter) not in own and id(parameter) not in seen and \
                        parameter.requires_grad:
                    seen.add(id(parameter))
                    others.append(parameter)
    return others


def _frequencies(given: Sequence[int] | Mapping[str, int] | None,
                 names: list[str]) -> list[int]:
    if given is None:
        return [1] * len(names)
    values = [given.get(name, 1) for name in names] if isinstance(given, Mapping) \
        else list(given)
    if isinstance(given, Mapping) and set(given) - set(names):
        raise ValueError(f"optimizer_frequencies names {sorted(set(given) - set(names))}, "
                         f"which are not optimizers ({names})")
    if len(values) != len(names) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"optimizer_frequencies must give each of the {len(names)} "
                         f"optimizers a step every n >= 1 batches, got {given!r}")
    if 1 not in values:  # batch 1 (and every batch no frequency divides) would step nothing
        raise ValueError(f"optimizer_frequencies={given!r} leaves batches on which no "
                         f"optimizer steps (batch 1 first: no frequency divides it), so "
                         f"they would train nothing; give at least one optimizer frequency 1 "
                         f"(e.g. [1, {max(values)}]: the first steps every batch, the second "
                         f"every {max(values)}th), or accumulate=n to step every optimizer "
                         f"every n batches over all of them")
    return values

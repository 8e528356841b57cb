"""Train/eval modes kept module by module.

``model.train(was_training)`` after a validation would put a submodule the user froze with
``backbone.eval()`` back in training mode, and its BatchNorm statistics would drift. Validation,
prediction, export and the model summary therefore put back every submodule's own mode, and a
training epoch keeps the frozen ones in eval (as Lightning does since 2.2; unlike Lightning, a
model handed over wholly in eval mode, as ``from_pretrained`` returns one, is trained).
"""

from __future__ import annotations

from torch import nn

__all__ = ["ModuleModes", "frozen_in_eval"]


class ModuleModes:
    """Every submodule's ``training`` flag at one moment, to put back later."""

    def __init__(self, module: nn.Module) -> None:
        self.modes = [(sub, sub.training) for sub in module.modules()]

    def restore(self) -> None:
        for sub, training in self.modes:
            sub.training = training


def frozen_in_eval(module: nn.Module) -> tuple[nn.Module, ...]:
    """The submodules a training epoch keeps in eval: those in eval mode under a root in
    training mode (a whole model in eval mode was merely left that way: it all trains)."""
    if not module.training:
        return ()
    return tuple(sub for sub in module.modules() if not sub.training)

"""Every warning hookline gives names the user's line (the call into hookline), not the
engine module that happened to raise it (hookline/user_warning.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hookline
from hookline.callbacks import EarlyStopping
from hookline.testing import tiny_data, tiny_model

SRC = Path(hookline.__file__).resolve().parent


def make(**options) -> hookline.Trainer:
    x, y = tiny_data(samples=16)
    return hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                            batch_size=8, epochs=1, device="cpu", verbose=0, **options)


def test_src_warns_only_through_user_warning() -> None:
    """A fixed ``stacklevel`` names whichever engine frame sits that far up."""
    found = [f"{path.relative_to(SRC)}:{number}"
             for path in sorted(SRC.rglob("*.py")) if path.name != "user_warning.py"
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if "warnings.warn(" in line or "stacklevel=" in line]
    assert found == [], f"warn through hookline.user_warning.warn instead: {found}"


def test_a_missing_monitor_names_the_line_that_called_fit() -> None:
    trainer = make(callbacks=[EarlyStopping(monitor="val_nothing", mode="min", strict=False)])
    with pytest.warns(RuntimeWarning, match="monitors 'val_nothing'") as caught:
        trainer.fit()
    assert {Path(w.filename) for w in caught} == {Path(__file__)}


def test_a_failing_callback_names_the_line_that_called_fit() -> None:
    def broken(trainer) -> None:
        raise KeyError("no such column")

    trainer = make()
    trainer.add_callback("on_train_epoch_end", broken, on_error="warn")
    with pytest.warns(RuntimeWarning, match="failed") as caught:
        trainer.fit()
    assert {Path(w.filename) for w in caught} == {Path(__file__)}

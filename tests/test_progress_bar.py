"""ProgressBar: Keras' verbose modes, tqdm and rich bars on a terminal, lines elsewhere."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from hookline import Trainer
from hookline.callbacks import LambdaCallback, ProgressBar
from hookline.callbacks import progress_bar as progress_module
from hookline.testing import tiny_data, tiny_model


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _fit(bar, *, epochs=2, extra=()):
    x, y = tiny_data(64)
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                      val_data=tiny_data(16, seed=1), epochs=epochs, batch_size=16, seed=0,
                      default_callbacks=False, callbacks=[bar, *extra])
    trainer.fit()
    return trainer


@pytest.mark.parametrize("verbose", [1, 2])
def test_without_a_terminal_it_prints_one_line_per_epoch(verbose):
    stream = io.StringIO()
    bar = ProgressBar(verbose=verbose, file=stream)
    assert "on_train_batch_end" not in bar.hookline_handlers()
    trainer = _fit(bar, epochs=3)
    lines = stream.getvalue().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert f"val_accuracy: {trainer.metrics['val_accuracy']:.4f}" in lines[-1]
    assert "\r" not in stream.getvalue()


def test_values_print_with_four_decimals_as_in_keras():
    """Keras' Progbar: ``.4f``, and ``.4e`` at or below 1e-3 in size, where four decimals
    would print 0; never rounded to four significant digits (12345.678 as 1.235e+04)."""
    stream = io.StringIO()
    scale = LambdaCallback(on_fit_epoch_end=lambda t: t.metrics.update(
        {"mae": 12345.678, "val_mae": 0.4410, "tiny": 2.5e-5, "steps": 7}))
    scale.order = 0
    _fit(ProgressBar(verbose=2, file=stream), epochs=1, extra=[scale])
    assert stream.getvalue().rstrip().endswith(
        " - mae: 12345.6780 - val_mae: 0.4410 - tiny: 2.5000e-05 - steps: 7")
    assert progress_module.format_metrics({"accuracy": 0.99994, "loss": -0.5, "zero": 0.0}) \
        == "accuracy: 0.9999 - loss: -0.5000 - zero: 0.0000e+00"


def test_verbose_0_prints_nothing_and_listens_to_nothing():
    stream = Terminal()
    bar = ProgressBar(verbose=0, file=stream)
    trainer = _fit(bar)
    assert stream.getvalue() == ""
    assert "ProgressBar" not in trainer.describe_callbacks()


@pytest.mark.parametrize("flavour", ["tqdm", "rich"])
def test_on_a_terminal_it_draws_a_bar_counting_every_batch(flavour):
    stream = Terminal()
    bar = ProgressBar(verbose=1, file=stream, flavour=flavour)
    assert bar.uses_bar() and "on_train_batch_end" in bar.hookline_handlers()
    _fit(bar)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # drop colour codes
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "4/4" in text  # 64 samples in batches of 16, all counted
    assert "val_loss" in text  # the epoch's metrics close the bar


def test_auto_flavour_falls_back_to_lines_when_neither_library_is_installed(monkeypatch):
    monkeypatch.setattr(progress_module, "_installed", lambda name: False)
    stream = Terminal()
    bar = ProgressBar(verbose="auto", file=stream)
    assert bar.flavour is None and not bar.uses_bar()
    _fit(bar)
    assert len(stream.getvalue().splitlines()) == 2


def test_the_per_batch_handler_never_reads_the_loss():
    class NoValues:
        epoch, epochs, step, batch_i = 0, 1, 0, 0
        batches_per_epoch = 3

        @property
        def loss(self):
            raise AssertionError("the bar read the loss (a device sync)")

        tloss = metrics = loss

    bar = ProgressBar(verbose=1, file=Terminal(), flavour="tqdm")
    handlers = bar.hookline_handlers()
    handlers["on_train_epoch_start"](NoValues())
    for _ in range(3):
        handlers["on_train_batch_end"](NoValues())
    bar._close(None)


@pytest.mark.parametrize("flavour", ["tqdm", "rich"])
def test_a_resumed_epoch_starts_its_bar_at_the_batches_already_done(flavour):
    trainer = SimpleNamespace(epoch=2, epochs=5, resume_batch=3, batches_per_epoch=5,
                              metrics={})
    stream = Terminal()
    bar = ProgressBar(verbose=1, file=stream, flavour=flavour)
    handlers = bar.hookline_handlers()
    handlers["on_train_epoch_start"](trainer)
    for _ in range(2):
        handlers["on_train_batch_end"](trainer)
    handlers["on_fit_epoch_end"](trainer)
    text = stream.getvalue()
    assert "Epoch 3/5" in text and "5/5" in text and "0/5" not in text


def test_a_stop_reason_is_printed_when_training_ends():
    stream = io.StringIO()
    stopper = LambdaCallback(on_fit_epoch_end=lambda t: t.request_stop("plateau reached"))
    _fit(ProgressBar(verbose=2, file=stream), epochs=5, extra=[stopper])
    assert stream.getvalue().splitlines()[-1] == "Training stopped after epoch 1: plateau reached"


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"verbose": 3}, ValueError, "must be 0, 1, 2 or 'auto'"),
    ({"verbose": True}, ValueError, "must be 0, 1, 2 or 'auto'"),
    ({"flavour": "curses"}, ValueError, "'tqdm', 'rich' or None"),
])
def test_bad_options_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        ProgressBar(**kwargs)


def test_a_flavour_that_is_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setattr(progress_module, "_installed", lambda name: False)
    with pytest.raises(ImportError, match=r"pip install 'hookline\[progress\]'"):
        ProgressBar(flavour="rich")

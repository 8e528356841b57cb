"""PlotResults: results.png exists, is a real PNG, and plots exactly the history."""

from __future__ import annotations

import struct
import sys
import warnings

import pytest

from hookline import Trainer
from hookline.callbacks import History
from hookline.loggers import PlotResults
from hookline.testing import tiny_data, tiny_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fit(callbacks, *, epochs=3, save_dir=None, initial_epoch=0):
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(48),
                      val_data=tiny_data(16, seed=1), epochs=epochs, batch_size=16, seed=0,
                      verbose=0, save_dir=save_dir, train_metrics=True,
                      initial_epoch=initial_epoch, callbacks=callbacks)
    trainer.fit()
    return trainer


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_results_png_plots_train_against_validation_exactly_as_the_history(tmp_path):
    plot = PlotResults()
    trainer = _fit([plot], save_dir=tmp_path)
    history = trainer.callbacks.find(History)[0]
    path = tmp_path / "results.png"
    assert plot.written == path
    width, height = _png_size(path)
    assert 600 <= width <= 3000 and 200 <= height <= 2000
    assert path.stat().st_size > 10_000  # curves, labels and legends, not an empty canvas
    epochs = [epoch + 1.0 for epoch in history.epoch]
    assert set(plot.plotted) == {"loss", "accuracy"}
    for title in ("loss", "accuracy"):
        lines = plot.plotted[title]
        assert list(lines) == [title, f"val_{title}"]  # train first, then validation
        for name, (x, y) in lines.items():
            assert x == epochs
            assert y == pytest.approx(history.history[name])


def test_loss_parts_named_with_a_slash_share_a_panel(tmp_path):
    from hookline.callbacks import LambdaCallback

    def add_parts(trainer):
        trainer.metrics.update({"train/box_loss": 2.0 - trainer.epoch,
                                "val/box_loss": 3.0 - trainer.epoch})

    plot = PlotResults()
    _fit([LambdaCallback(on_fit_epoch_end=add_parts), plot], save_dir=tmp_path)
    assert plot.plotted["box_loss"] == {"train/box_loss": ([1.0, 2.0, 3.0], [2.0, 1.0, 0.0]),
                                        "val/box_loss": ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])}


def test_the_image_has_drawn_pixels(tmp_path):
    from matplotlib import image
    plot = PlotResults(tmp_path / "plots" / "curves.png", metrics=["loss"], dpi=50)
    _fit([plot])
    pixels = image.imread(tmp_path / "plots" / "curves.png")
    assert pixels.ndim == 3 and pixels.std() > 0.05  # not a blank canvas
    assert set(plot.plotted) == {"loss"}


def test_without_a_path_or_save_dir_it_warns_early_and_training_goes_on():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _fit([PlotResults()], epochs=2)
    assert trainer.epoch == 1
    messages = [str(w.message) for w in caught]
    assert any("PlotResults" in m and "on_train_start" in m and "save_dir" in m
               for m in messages), messages


def test_a_resumed_run_plots_both_parts_without_repeating_epochs(tmp_path):
    first = PlotResults(tmp_path / "a.png")
    _fit([first], epochs=4)  # epochs 0..3; pretend the checkpoint was taken after epoch 1
    resumed = PlotResults(tmp_path / "b.png")
    resumed.load_state_dict(first.state_dict())
    _fit([resumed], epochs=5, initial_epoch=2)
    x, y = resumed.plotted["loss"]["loss"]
    assert x == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert y[:2] == pytest.approx(first.values["loss"][:2])


def test_a_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    plot = PlotResults(tmp_path / "x.png")
    plot.epochs, plot.values = [0], {"loss": [1.0]}
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'hookline\[plots\]'"):
        plot.plot(tmp_path / "x.png")


def test_asking_for_metrics_never_logged_is_a_clear_error(tmp_path):
    plot = PlotResults(metrics=["f1"])
    plot.epochs, plot.values = [0], {"loss": [1.0]}
    with pytest.raises(ValueError, match=r"none of metrics=\['f1'\] was logged"):
        plot.plot(tmp_path / "x.png")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"metrics": "loss"}, TypeError, "list of metric names"),
    ({"metrics": [1]}, TypeError, "list of metric names"),
    ({"dpi": 0}, ValueError, "dpi"),
])
def test_bad_options_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        PlotResults(**kwargs)

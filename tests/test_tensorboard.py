"""TensorBoard logger, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

from hookline import Trainer
from hookline.callbacks import History, LambdaCallback
from hookline.loggers import TensorBoard
from hookline.testing import tiny_data, tiny_model


def _read(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def _fit(callbacks, *, epochs=3, save_dir=None, **options):
    add_lr = LambdaCallback(on_fit_epoch_end=lambda t: t.metrics.update(
        lr=t.optimizer.param_groups[0]["lr"]))
    add_lr.order = -10  # an LR monitor's place: before the loggers
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(64),
                      val_data=tiny_data(16, seed=1), epochs=epochs, batch_size=16, seed=0,
                      verbose=0, lr=0.01, save_dir=save_dir, callbacks=[add_lr, *callbacks],
                      **options)
    trainer.fit()
    return trainer


def test_epoch_and_step_scalars_read_back_equal_the_history(tmp_path):
    trainer = _fit([TensorBoard(tmp_path / "tb", log_every_n_steps=5)])
    history = trainer.callbacks.find(History)[0].history
    events = _read(tmp_path / "tb")
    scalars = set(events.Tags()["scalars"])
    assert {"epoch/loss", "epoch/val_loss", "epoch/val_accuracy", "epoch/lr"} <= scalars
    for name in ("loss", "val_loss", "val_accuracy", "lr"):
        logged = events.Scalars(f"epoch/{name}")
        assert [event.step for event in logged] == [0, 1, 2]
        assert [event.value for event in logged] == pytest.approx(history[name], rel=1e-6)
    # 3 epochs of 4 batches = 12 optimizer steps; every 5th is logged
    assert [event.step for event in events.Scalars("step/loss")] == [5, 10]
    assert [event.value for event in events.Scalars("step/lr")] == pytest.approx([0.01] * 2)
    assert not events.Tags()["histograms"] and not events.Tags()["graph"]


def test_each_validation_of_a_val_check_interval_is_written_at_its_step(tmp_path):
    """Lightning's global step: every validation, mid-epoch ones included, is step/val_* at
    trainer.step; epoch/val_* stays one value an epoch."""
    validated = []
    record = LambdaCallback(on_val_end=lambda v: validated.append((v.trainer.step, v.metrics)))
    trainer = _fit([record, TensorBoard(tmp_path / "tb", log_every_n_steps=0)], epochs=2,
                   val_check_interval=1)  # 4 batches: 3 validations inside each epoch
    events = _read(tmp_path / "tb")
    for name in ("loss", "accuracy"):
        logged = events.Scalars(f"step/val_{name}")
        assert [event.step for event in logged] == [step for step, _ in validated]
        assert [event.value for event in logged] == \
            pytest.approx([metrics[name] for _, metrics in validated], rel=1e-6)
    assert [event.step for event in events.Scalars("epoch/val_loss")] == [0, 1]
    assert [event.value for event in events.Scalars("epoch/val_loss")] == \
        pytest.approx(trainer.callbacks.find(History)[0].history["val_loss"])
    assert [step for step, _ in validated] == list(range(1, 9))


def test_a_run_without_val_check_interval_writes_no_step_validation(tmp_path):
    _fit([TensorBoard(tmp_path / "tb", log_every_n_steps=1)], epochs=1)
    assert not [tag for tag in _read(tmp_path / "tb").Tags()["scalars"]
                if tag.startswith("step/val")]


def test_a_numpy_scalar_or_0d_tensor_metric_is_written_as_a_number(tmp_path):
    """A callback adding ``array.mean()`` or ``weight.norm()`` to the metrics: TensorBoard
    writes them (it wrote only Python numbers before, while the CSV had them)."""
    import numpy as np

    add = LambdaCallback(on_fit_epoch_end=lambda t: t.metrics.update(
        numpy_value=np.float32(0.25 + t.epoch), tensor_value=torch.tensor(0.75 + t.epoch),
        flag=True))
    add.order = -5
    _fit([add, TensorBoard(tmp_path / "tb")])
    events = _read(tmp_path / "tb")
    assert [e.value for e in events.Scalars("epoch/numpy_value")] == [0.25, 1.25, 2.25]
    assert [e.value for e in events.Scalars("epoch/tensor_value")] == [0.75, 1.75, 2.75]
    assert "epoch/flag" not in events.Tags()["scalars"]


def test_step_lr_is_the_rate_that_step_used_under_a_per_step_schedule(tmp_path):
    """warmup_cosine steps after every optimizer step: step/lr at step n is the rate step n
    trained with (before, the rate of step n + 1), as step/loss is that step's loss."""
    from hookline.callbacks import warmup_cosine

    used = {}
    record = LambdaCallback(on_train_batch_start=lambda t: used.setdefault(
        t.step + 1, t.optimizer.param_groups[0]["lr"]))
    record.order = -100
    trainer = Trainer(tiny_model(), loss="cross_entropy", optimizer="sgd", lr=0.1,
                      train_data=tiny_data(64), batch_size=8, epochs=1, verbose=0,
                      callbacks=[record, warmup_cosine(warmup=4),
                                 TensorBoard(tmp_path / "tb", log_every_n_steps=1)])
    trainer.fit()
    logged = {event.step: event.value for event in _read(tmp_path / "tb").Scalars("step/lr")}
    assert sorted(logged) == list(range(1, 9))
    assert len(set(used.values())) > 4  # the rate moved every step
    assert logged == pytest.approx({step: used[step] for step in logged})


def test_metric_names_with_a_slash_keep_their_parts(tmp_path):
    def add_parts(trainer):
        trainer.metrics.update({"train/box_loss": 0.25 * trainer.epoch,
                                "val/box_loss": 1.0 + trainer.epoch})

    parts = LambdaCallback(on_fit_epoch_end=add_parts)
    parts.order = -10
    trainer = _fit([parts, TensorBoard(tmp_path / "tb", log_every_n_steps=0)])
    history = trainer.callbacks.find(History)[0].history
    events = _read(tmp_path / "tb")
    for name in ("train/box_loss", "val/box_loss"):
        logged = events.Scalars(f"epoch/{name}")
        assert [event.step for event in logged] == [0, 1, 2]
        assert [event.value for event in logged] == pytest.approx(history[name])


def test_the_loss_is_read_only_at_logged_steps():
    class CountingLoss:
        reads = 0

        def detach(self):
            return self

        def __float__(self):
            CountingLoss.reads += 1
            return 0.5

    class Writer:
        def __init__(self):
            self.scalars = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

    class Engine:
        loss = CountingLoss()
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        step = 0

    logger = TensorBoard(log_every_n_steps=4)
    logger.writer = Writer()
    engine = Engine()
    for step in (0, 1, 1, 2, 3, 4, 4, 4, 5, 6, 7, 8):  # repeats: accumulation batches
        engine.step = step
        logger.hookline_handlers()["on_train_batch_end"](engine)
    assert CountingLoss.reads == 2
    assert [s for s in logger.writer.scalars if s[0] == "step/loss"] == [
        ("step/loss", 0.5, 4), ("step/loss", 0.5, 8)]


def test_no_per_batch_hook_when_step_logging_is_off():
    assert "on_train_batch_end" not in TensorBoard(log_every_n_steps=0).hookline_handlers()


def test_histograms_and_graph_when_asked(tmp_path):
    trainer = _fit([TensorBoard(log_every_n_steps=0, histogram_freq=2, write_graph=True)],
                   save_dir=tmp_path)
    events = _read(tmp_path / "tensorboard")  # the default folder under save_dir
    histograms = events.Tags()["histograms"]
    assert set(histograms) == {f"weights/{name}" for name, _ in
                               trainer.model.named_parameters()}
    assert [event.step for event in events.Histograms("weights/0.weight")] == [0, 2]
    assert events.Tags()["graph"]
    assert "step/loss" not in events.Tags()["scalars"]
    assert trainer.model.training  # tracing in eval mode left the mode as it was


def test_a_model_that_cannot_be_traced_only_loses_its_graph(tmp_path):
    class Untraceable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny_model()

        def forward(self, x):
            if torch.jit.is_tracing():
                raise RuntimeError("no tracing here")
            return self.inner(x)

    trainer = Trainer(Untraceable(), loss="cross_entropy", train_data=tiny_data(32), epochs=2,
                      batch_size=16, verbose=0, callbacks=[TensorBoard(tmp_path, write_graph=True)])
    with pytest.warns(RuntimeWarning, match="could not trace the model"):
        trainer.fit()
    assert [e.step for e in _read(tmp_path).Scalars("epoch/loss")] == [0, 1]


def test_a_missing_tensorboard_warns_with_the_extra_and_training_goes_on(monkeypatch,
                                                                          tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _fit([TensorBoard(tmp_path)], epochs=2)
    assert trainer.epoch == 1
    assert any("pip install 'hookline[tensorboard]'" in str(w.message) for w in caught)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"log_every_n_steps": -1}, "log_every_n_steps"),
    ({"log_every_n_steps": 2.5}, "log_every_n_steps"),
    ({"histogram_freq": "1"}, "histogram_freq"),
    ({"histogram_freq": True}, "histogram_freq"),
])
def test_bad_options_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorBoard(**kwargs)


@pytest.mark.parametrize("crash_event, n", [("on_train_batch_end", 7),  # mid-epoch 1
                                            ("on_fit_epoch_end", 2)])  # at epoch 1's end
def test_a_resumed_run_logs_every_step_and_epoch_once_with_the_uninterrupted_values(
        tmp_path, crash_event, n):
    """The interrupted run logged past its last backup; after the resume those values are
    dropped from its event files and logged again, so the folder reads back exactly as an
    uninterrupted run's."""
    from hookline.callbacks import BackupAndRestore
    from hookline.testing import Crash, crash_at

    def callbacks(folder, *extra):
        return [TensorBoard(folder, log_every_n_steps=1),
                BackupAndRestore(tmp_path / "backup", save_freq=3), *extra]

    _fit(callbacks(tmp_path / "whole"))
    with pytest.raises(Crash):
        _fit(callbacks(tmp_path / "cut", crash_at(crash_event, n, order=300)))
    _fit(callbacks(tmp_path / "cut"))
    whole, cut = _read(tmp_path / "whole"), _read(tmp_path / "cut")
    for tag in ("step/loss", "epoch/loss", "epoch/val_loss", "epoch/lr"):
        expected = [(event.step, event.value) for event in whole.Scalars(tag)]
        assert [(event.step, event.value) for event in cut.Scalars(tag)] == expected, tag
    assert len(whole.Scalars("step/loss")) == 12


def test_rewinding_leaves_a_folder_with_nothing_after_the_point_untouched(tmp_path):
    from hookline.loggers.tensorboard_rewind import rewind_event_files
    _fit([TensorBoard(tmp_path, log_every_n_steps=1)])
    files = {path: path.read_bytes() for path in tmp_path.glob("events.out.tfevents.*")}
    assert rewind_event_files(tmp_path, step=12, epoch=3) == 0
    assert {path: path.read_bytes() for path in files} == files
    # steps 5-12 (step/loss, step/lr); epochs 1-2 (loss, val_loss, val_accuracy, lr)
    assert rewind_event_files(tmp_path, step=4, epoch=1) == 8 * 2 + 2 * 4
    assert [event.step for event in _read(tmp_path).Scalars("step/loss")] == [1, 2, 3, 4]


def test_a_writer_opened_after_the_wait_sorts_after_this_seconds_files(tmp_path, monkeypatch):
    """TensorBoard reads event files in name order; in one process and one second, writer
    number 10's file sorts before number 9's, so a resume right after a run would read back
    its steps first. Waiting for a later second puts its file last."""
    import time

    from tensorboard.summary.writer import event_file_writer
    from torch.utils.tensorboard import SummaryWriter

    from hookline.loggers.tensorboard_rewind import wait_for_a_later_second

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    time.sleep(1.02 - time.time() % 1)  # both writers below open early in one second
    with SummaryWriter(log_dir=str(tmp_path)) as first:
        first.add_scalar("step/loss", 1.0, 1)
    (earlier,) = tmp_path.glob("events.out.tfevents.*")
    assert earlier.name.endswith(".9")
    slept = wait_for_a_later_second(tmp_path)
    assert 0 < slept < 1.1
    with SummaryWriter(log_dir=str(tmp_path)) as second:
        second.add_scalar("step/loss", 2.0, 2)
    names = sorted(path.name for path in tmp_path.glob("events.out.tfevents.*"))
    assert names[-1].endswith(".10") and names[0] == earlier.name
    assert wait_for_a_later_second(tmp_path / "nothing-here") == 0

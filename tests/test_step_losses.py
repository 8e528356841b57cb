"""Each step's loss as the engine records it (hookline/step_losses.py): a Python float on the
CPU, where reading a tensor waits for no device and a float keeps no tensor alive; a detached
tensor elsewhere. What reads them (the epoch's loss, tloss, step_losses, checkpoints, a
resume) gives the same values either way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import hookline
from hookline.checkpoint import build_checkpoint, load_checkpoint, write_checkpoint
from hookline.step_losses import RunningMeans, restored, stacked
from hookline.structure import sample_count
from hookline.testing import tiny_data, tiny_model


def make(**options) -> hookline.Trainer:
    x, y = tiny_data(samples=48)
    settings = {"loss": "cross_entropy", "train_data": (x, y), "batch_size": 8, "epochs": 1,
                "seed": 5, "device": "cpu", "verbose": 0}
    settings.update(options)
    return hookline.Trainer(tiny_model(), **settings)


def test_a_cpu_run_keeps_each_steps_loss_as_a_float_with_the_steps_own_value() -> None:
    seen, items = [], []

    def at_batch_end(trainer) -> None:
        seen.append(trainer.loss.item())
        items.append(trainer.loss_items)

    trainer = make(callbacks=[hookline.LambdaCallback(on_train_batch_end=at_batch_end)])
    ends = []
    trainer.add_callback("on_train_epoch_end", lambda t: ends.append(
        (list(t.epoch_losses), t.step_losses, t.train_loss, t.metrics["loss"])))
    trainer.fit()
    kept, steps, running, logged = ends[0]
    assert [type(value) for value in kept] == [float] * 6  # no tensor per step
    assert kept == seen
    assert steps.dtype == torch.float64 and steps.tolist() == seen
    assert math.isclose(running.item(), sum(seen) / 6, rel_tol=1e-12)
    assert logged == running.item()
    # loss_items: this step's loss, detached
    assert all(item.dim() == 0 and not item.requires_grad for item in items)
    assert [item.item() for item in items] == seen


def test_floats_stack_exactly_and_rows_stay_tensors() -> None:
    float32 = torch.tensor([0.1, 2.5, 1e-8], dtype=torch.float32)
    values = float32.tolist()  # what loss.item() gives for each
    assert torch.equal(stacked(values).to(torch.float32), float32)  # float64 loses nothing
    assert math.isclose(RunningMeans().of(values, [8, 8, 8]).item(), sum(values) / 3, rel_tol=1e-15)
    rows = [torch.tensor([1.0, 0.5, math.nan]), torch.tensor([3.0, 1.5, 2.0])]
    assert torch.equal(RunningMeans().of(rows, [4, 4]), torch.tensor([2.0, 1.0, 2.0]))  # NaN left out
    assert restored(stacked(values), torch.device("cpu")) == values
    on_meta = restored(stacked(values), torch.device("meta"))  # any device but the CPU
    assert [value.device.type for value in on_meta] == ["meta"] * 3
    assert all(value.dim() == 1 for value in restored(torch.stack(rows), torch.device("cpu")))


def test_a_mid_epoch_checkpoint_resumes_with_the_same_epoch_loss(tmp_path: Path) -> None:
    saved = []

    def save_at_batch_3(trainer) -> None:
        if trainer.batch_i == 2 and not saved:
            path = tmp_path / "mid.ckpt"
            write_checkpoint(build_checkpoint(trainer), path)
            saved.append(path)

    def epoch_losses_of(trainer: hookline.Trainer) -> list[float]:
        found: list[float] = []
        trainer.add_callback("on_train_epoch_end", lambda t: found.append(t.metrics["loss"]))
        trainer.fit()
        return found

    whole = make(epochs=2, callbacks=[hookline.LambdaCallback(
        on_train_batch_end=save_at_batch_3)])
    expected = epoch_losses_of(whole)
    assert load_checkpoint(saved[0])["run"]["epoch_losses"].dtype == torch.float64
    resumed = make(epochs=2, resume=saved[0])
    # the first epoch's loss: 3 steps from the checkpoint's floats, 3 trained after it
    assert epoch_losses_of(resumed) == expected
    assert [type(value) for value in resumed.epoch_losses] == [float] * 6


class CountedList(list):
    """A record that counts the steps read out of it by slicing."""

    read = 0

    def __getitem__(self, index):
        found = super().__getitem__(index)
        if isinstance(index, slice):
            CountedList.read += len(found)
        return found


def test_reading_the_running_mean_every_step_reads_each_step_once() -> None:
    """Reading the mean after every step (a Keras callback's batch logs) must add the steps
    since the last read, not re-read the epoch: that was quadratic in steps per epoch."""
    for first, later in ((0.5, 1.5), (torch.tensor([0.5, 0.25]), torch.tensor([1.5, 0.75]))):
        CountedList.read = 0
        means, losses, sizes = RunningMeans(), CountedList([first]), [32]
        for step in range(2, 201):
            losses.append(later)
            sizes.append(32)
            found = means.of(losses, sizes)
        assert CountedList.read == 200  # re-reading the epoch on every read: 20,100
        expected = (first + 199 * later) / 200
        assert torch.allclose(found, torch.as_tensor(expected, dtype=found.dtype))


def test_keras_batch_logs_hold_the_running_mean_across_epochs() -> None:
    from hookline import keras
    running = []

    class Running(keras.Callback):
        def on_train_batch_end(self, batch, logs=None):
            running.append(logs["loss"])

    seen = []
    trainer = make(train_data=tiny_data(samples=240), epochs=2, callbacks=[Running()])
    trainer.add_callback("on_after_loss", lambda t: seen.append(t.loss.item()))
    trainer.fit()
    steps = 30  # an epoch's: the second epoch's means start again
    expected = [math.fsum(seen[epoch * steps:epoch * steps + i + 1]) / (i + 1)
                for epoch in range(2) for i in range(steps)]
    assert running == [pytest.approx(value, rel=1e-12) for value in expected]


def test_running_means_start_again_for_a_new_record_and_leave_nan_parts_out() -> None:
    means = RunningMeans()
    rows = [torch.tensor([1.0, 0.5, math.nan])]
    # a part no step has a value for yet reads NaN
    assert torch.allclose(means.of(rows, [8] * len(rows)), torch.tensor([1.0, 0.5, math.nan]), equal_nan=True)
    rows.append(torch.tensor([3.0, 1.5, 2.0]))
    rows.append(torch.tensor([5.0, math.nan, 4.0]))
    found = means.of(rows, [8] * len(rows))
    assert found.dtype == torch.float32
    assert torch.allclose(found, torch.tensor([3.0, 1.0, 3.0]))
    assert means.of([2.0, 4.0], [8, 8]).item() == 3.0  # the next epoch's list: sums start again
    shorter = [7.0]
    assert means.of(shorter, [8] * len(shorter)).item() == 7.0
    shorter.append(9.0)
    assert means.of(shorter, [8] * len(shorter)).item() == 8.0


def test_the_means_weigh_each_step_by_its_batch_size() -> None:
    """An epoch's mean is over samples (Keras', Lightning's): a short last batch weighs what
    it holds, on floats and on rows of parts alike, read at once or a step at a time."""
    values, sizes = [1.0, 2.0, 4.0], [4, 4, 2]
    expected = (1.0 * 4 + 2.0 * 4 + 4.0 * 2) / 10
    assert RunningMeans().of(values, sizes).item() == pytest.approx(expected, rel=1e-15)
    stepwise, losses = RunningMeans(), []
    for value in values:
        losses.append(value)
        found = stepwise.of(losses, sizes[:len(losses)])
    assert found.item() == pytest.approx(expected, rel=1e-15)
    rows = [torch.tensor([1.0, 0.5, math.nan]), torch.tensor([3.0, 1.5, 2.0]),
            torch.tensor([5.0, 2.5, 4.0])]
    weighted = RunningMeans().of(rows, [4, 4, 2])
    assert torch.allclose(weighted, torch.tensor([(4 + 12 + 10) / 10, (2 + 6 + 5) / 10,
                                                  (8 + 8) / 6]))
    with pytest.raises(RuntimeError, match="2 batch sizes for 3 losses"):
        RunningMeans().of(values, sizes[:2])


def test_the_epoch_loss_is_the_datasets_mean_loss_like_val_loss() -> None:
    x, y = tiny_data(samples=10)
    frozen = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                              val_data=(x, y), batch_size=4, epochs=1, verbose=0, shuffle=False,
                              optimizer=lambda parameters: torch.optim.SGD(parameters, lr=0.0),
                              metrics=None)
    metrics = frozen.fit()
    with torch.no_grad():
        true_mean = float(torch.nn.functional.cross_entropy(frozen.model(x), y))
    assert metrics["loss"] == pytest.approx(true_mean, rel=1e-6)  # batches of 4, 4 and 2
    assert metrics["val_loss"] == pytest.approx(true_mean, rel=1e-6)


def test_a_batch_of_per_sample_lists_counts_its_samples_not_an_images_channels() -> None:
    """torchvision's detection collate gives (a list of N images, a list of N target dicts):
    a short last batch of 2 weighs 2 (before: 3, the first image's channels, so the epoch's
    loss was the plain mean of batch means)."""
    images = [torch.randn(3, 8, 8) for _ in range(10)]
    targets = [{"value": torch.tensor(float(i))} for i in range(10)]
    batches = [(images[i:i + 4], targets[i:i + 4]) for i in range(0, 10, 4)]  # 4, 4, 2

    def step(trainer: hookline.Trainer, batch: Any) -> torch.Tensor:
        _, tgts = batch  # the loss is the mean of the batch's target values
        return torch.stack([t["value"] for t in tgts]).mean() + 0 * trainer.model.weight.sum()
    trainer = hookline.Trainer(torch.nn.Linear(1, 1), optimizer="sgd", lr=0.0,
                               training_step=step, train_data=batches, verbose=0)
    trainer.fit()
    assert trainer.epoch_sizes == [4, 4, 2]
    assert trainer.metrics["loss"] == pytest.approx(sum(range(10)) / 10)
    several_inputs = ((torch.randn(5, 2), torch.randn(5, 7)), torch.randn(5))
    assert sample_count(several_inputs) == 5

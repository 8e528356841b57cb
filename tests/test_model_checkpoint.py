"""ModelCheckpoint: files left on disk, templates, triggers, payloads, options and state."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta

import numpy as np
import pytest
import torch

import hookline
from hookline import LambdaCallback
from hookline.callbacks import ModelCheckpoint
from hookline.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint,
    load_weights,
    read_checkpoint_info,
)
from hookline.testing import (
    Crash,
    RecordingCallback,
    ScriptedMetrics,
    crash_at,
    tiny_data,
    tiny_model,
)

NAN = math.nan



def fit(callbacks, epochs, *, samples=16, batch_size=16, **options):
    x, y = tiny_data(samples=samples)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=batch_size, epochs=epochs, callbacks=callbacks,
                               default_callbacks=False, verbose=0, device="cpu", seed=0,
                               **options)
    trainer.fit()
    return trainer


def files(folder):
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# (options, monitored val_loss sequence (val_accuracy when the monitor says so), files left)
CASES = {
    "top-2 by val_loss": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=2),
        [5, 1, 4, 2, 3], ["m-1.pt", "m-3.pt"]),
    "top-k -1 keeps all": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=-1),
        [5, 1, 4], ["m-0.pt", "m-1.pt", "m-2.pt"]),
    "default keeps every epoch": (
        dict(filename="m-{epoch}"), [5, 1, 4], ["m-0.pt", "m-1.pt", "m-2.pt"]),
    "top-k 0 with save_last keeps only last": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=0, save_last=True),
        [5, 1, 4], ["last.pt"]),
    "top-1 plus last": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=1, save_last=True),
        [5, 1, 4], ["last.pt", "m-1.pt"]),
    "metric template": (
        dict(filename="model-{epoch:02d}-{val_loss:.2f}", monitor="val_loss", save_top_k=1),
        [5, 3, 4, 1.234, 2], ["model-03-1.23.pt"]),
    "Lightning's auto_insert_metric_name": (
        dict(filename="{epoch}-{val_loss:.1f}", monitor="val_loss", save_top_k=1,
             auto_insert_metric_name=True),
        [5, 2, 4], ["epoch=1-val_loss=2.0.pt"]),
    "mode auto: max for accuracy": (
        dict(filename="m-{epoch}", monitor="val_accuracy", save_top_k=2),
        [0.5, 0.9, 0.7, 0.8], ["m-1.pt", "m-3.pt"]),
    "initial_value_threshold": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=-1,
             initial_value_threshold=3.5), [5, 3, 4, 1, 2], ["m-1.pt", "m-3.pt", "m-4.pt"]),
    "no monitor: the latest k": (
        dict(filename="m-{epoch}", save_top_k=2), [5, 1, 4, 2, 3], ["m-3.pt", "m-4.pt"]),
    "every_n_epochs": (
        dict(filename="m-{epoch}", every_n_epochs=2), [5, 1, 4, 2, 3], ["m-1.pt", "m-3.pt"]),
    "NaN metric is never kept": (
        dict(filename="m-{epoch}", monitor="val_loss", save_top_k=-1), [5, NAN, 4],
        ["m-0.pt", "m-2.pt"]),
    "a name without epoch is overwritten": (
        dict(filename="best", monitor="val_loss", save_top_k=1), [5, 1, 4], ["best.pt"]),
    "extensions are kept": (
        dict(filename="m-{epoch}.ckpt", save_top_k=1), [5, 1], ["m-1.ckpt"]),
}


@pytest.mark.parametrize("options, values, expected", CASES.values(), ids=CASES.keys())
def test_files_left_on_disk(tmp_path, options, values, expected):
    monitor = options.get("monitor") or "val_loss"
    checkpoint = ModelCheckpoint(dirpath=tmp_path, **options)
    fit([ScriptedMetrics({monitor: values}), checkpoint], epochs=len(values))
    assert files(tmp_path) == expected
    assert set(checkpoint.best_k_models) == {str(tmp_path / name) for name in expected
                                             if name != "last.pt"}


def test_keras_save_best_only_with_filepath(tmp_path):
    checkpoint = ModelCheckpoint(tmp_path / "best.pt", save_best_only=True)  # monitors val_loss
    fit([ScriptedMetrics({"val_loss": [5, 1, 4, 3]}), checkpoint], epochs=4)
    assert files(tmp_path) == ["best.pt"]
    saved = load_checkpoint(tmp_path / "best.pt")
    assert saved["run"]["epoch"] == 1 and saved["run"]["metrics"]["val_loss"] == 1
    assert checkpoint.best_model_path == str(tmp_path / "best.pt")
    assert checkpoint.best_model_score == 1


def test_keras_filepath_template_with_metrics(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "model-{epoch:02d}-{val_loss:.2f}.pt"),
                                 monitor="val_loss", save_top_k=2, save_last=True)
    fit([ScriptedMetrics({"val_loss": [0.5, 0.25, 0.75]}), checkpoint], epochs=3)
    assert files(tmp_path) == ["last.pt", "model-00-0.50.pt", "model-01-0.25.pt"]
    assert checkpoint.last_model_path == str(tmp_path / "last.pt")
    assert checkpoint.best_model_path == str(tmp_path / "model-01-0.25.pt")
    assert checkpoint.kth_value == 0.5


def test_best_and_kth_are_exposed(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_accuracy",
                                 save_top_k=3)
    fit([ScriptedMetrics({"val_accuracy": [0.1, 0.5, 0.3, 0.4]}), checkpoint], epochs=4)
    assert checkpoint.best_model_score == 0.5
    assert checkpoint.best_model_path.endswith("m-1.pt")
    assert checkpoint.kth_best_model_path.endswith("m-2.pt") and checkpoint.kth_value == 0.3
    assert checkpoint.best_k_models == {str(tmp_path / "m-1.pt"): 0.5,
                                        str(tmp_path / "m-2.pt"): 0.3,
                                        str(tmp_path / "m-3.pt"): 0.4}


def test_full_files_are_verified_checkpoints_and_weights_only_files_are_not(tmp_path):
    # one name, overwritten at every epoch (no -v1, -v2 versions)
    full = ModelCheckpoint(dirpath=tmp_path / "full", filename="m", enable_version_counter=False)
    light = ModelCheckpoint(dirpath=tmp_path / "light", filename="m", save_weights_only=True,
                            enable_version_counter=False)
    trainer = fit([full, light], epochs=2, samples=32)
    info = read_checkpoint_info(tmp_path / "full" / "m.pt")  # the header of the format
    assert info["epoch"] == 1 and info["step"] == 4 and info["phase"] == "epoch_done"
    loaded = load_checkpoint(tmp_path / "full" / "m.pt")  # checksum verified, safe unpickling
    assert loaded["optimizer"]["state"], "the optimizer's moments must be saved to resume"
    assert any(key.startswith("ModelCheckpoint") for key in loaded["callbacks"])
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(loaded["model"][name], tensor)
    with pytest.raises(CorruptCheckpointError, match="plain torch.save file"):
        read_checkpoint_info(tmp_path / "light" / "m.pt")
    weights = torch.load(tmp_path / "light" / "m.pt", weights_only=True)
    assert set(weights) == {"model", "epoch", "step", "metrics", "input_signature"}
    assert weights["epoch"] == 1 and set(weights["model"]) == set(loaded["model"])
    assert torch.equal(load_weights(tmp_path / "full" / "m.pt")["model"]["0.weight"],
                       weights["model"]["0.weight"])  # load_weights reads both kinds


def test_every_n_train_steps(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}", every_n_train_steps=2)
    fit([checkpoint], epochs=3, samples=48)  # 3 steps per epoch, 9 in all
    assert files(tmp_path) == ["s-2.pt", "s-4.pt", "s-6.pt", "s-8.pt"]


def test_keras_save_freq(tmp_path):
    fit([ModelCheckpoint(dirpath=tmp_path / "n", filename="s-{step}", save_freq=3)], epochs=2,
        samples=48)
    fit([ModelCheckpoint(dirpath=tmp_path / "e", filename="e-{epoch}", save_freq="epoch")],
        epochs=2)
    assert files(tmp_path / "n") == ["s-3.pt", "s-6.pt"]
    assert files(tmp_path / "e") == ["e-0.pt", "e-1.pt"]
    with pytest.raises(ValueError, match=r"save_freq='batch'.*'epoch' or a number"):
        ModelCheckpoint(dirpath=tmp_path, save_freq="batch")


def test_every_n_train_steps_counts_optimizer_steps_not_batches(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}", every_n_train_steps=1)
    fit([checkpoint], epochs=1, samples=64, accumulate=2)  # 4 batches, 2 optimizer steps
    assert files(tmp_path) == ["s-1.pt", "s-2.pt"]


def test_step_saves_with_a_monitor_wait_for_the_metric(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}", monitor="val_loss",
                                 save_top_k=1, every_n_train_steps=1)
    fit([ScriptedMetrics({"val_loss": [3, 1, 2]}), checkpoint], epochs=3, samples=32)
    # epoch 0 has no val_loss yet; steps 3-4 rank by epoch 0's 3, steps 5-6 by epoch 1's 1
    assert files(tmp_path) == ["s-5.pt"]


def test_a_second_fit_of_one_trainer_ranks_step_saves_by_its_own_validation(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}", monitor="val_loss",
                                 every_n_train_steps=1)
    x, y = tiny_data(samples=32)  # two optimizer steps per epoch
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=16, epochs=2, default_callbacks=False, verbose=0,
                               device="cpu", seed=0, save_dir=tmp_path / "run",
                               callbacks=[ScriptedMetrics({"val_loss": [3, 1]}), checkpoint])
    trainer.fit()
    assert files(tmp_path) == ["run", "s-3.pt", "s-4.pt"]  # epoch 0's steps had no val_loss
    at_start = {}
    trainer.add_callback("on_train_start", lambda t: at_start.update(
        metrics=dict(t.metrics), fitness=t.fitness, best_fitness=t.best_fitness))
    trainer.fit()  # a new run: the first fit's last val_loss ranks none of its saves
    assert at_start == {"metrics": {}, "fitness": None, "best_fitness": None}
    assert files(tmp_path) == ["run", "s-3.pt", "s-4.pt", "s-7.pt", "s-8.pt"]
    assert checkpoint.best_k_models == {str(tmp_path / "s-7.pt"): 3, str(tmp_path / "s-8.pt"): 3}


@pytest.mark.parametrize("interval, expected", [
    (timedelta(hours=1), []), (1e-6, ["s-1.pt", "s-2.pt", "s-3.pt", "s-4.pt"])])
def test_train_time_interval(tmp_path, interval, expected):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}",
                                 train_time_interval=interval)
    fit([checkpoint], epochs=2, samples=32)
    assert files(tmp_path) == expected


def test_per_batch_hooks_only_when_configured():
    assert "on_train_batch_end" not in ModelCheckpoint(dirpath="x").hookline_handlers()
    assert "on_fit_epoch_end" in ModelCheckpoint(dirpath="x").hookline_handlers()
    steps = ModelCheckpoint(dirpath="x", every_n_train_steps=5).hookline_handlers()
    assert "on_train_batch_end" in steps and "on_fit_epoch_end" not in steps


@pytest.mark.parametrize("background", [False, True])
def test_on_model_save_fires_after_each_save(tmp_path, background):
    saves = []
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_loss",
                                 save_top_k=1, background=background)

    def on_save(trainer):
        on_disk_at_event = trainer.last_checkpoint.exists()
        checkpoint.wait()  # a background write is complete once wait() returns
        saves.append((trainer.epoch, trainer.last_checkpoint.name, on_disk_at_event,
                      trainer.last_checkpoint.exists()))

    fit([ScriptedMetrics({"val_loss": [3, 4, 1]}), checkpoint,
         LambdaCallback(on_model_save=on_save)], epochs=3)
    assert [s[:2] for s in saves] == [(0, "m-0.pt"), (2, "m-2.pt")]  # epoch 1 was not saved
    assert all(s[3] for s in saves)
    if not background:
        assert all(s[2] for s in saves)  # synchronous: on disk when the event fires


def test_background_writes_leave_the_loop_before_the_disk(tmp_path, monkeypatch):
    """The loop waits for serialisation only; the file write happens in another thread."""
    import threading

    import hookline.files.checkpoint_writer as checkpoint_module
    writers = []
    original = checkpoint_module.atomic_write_bytes

    def recording(data, path, **options):
        writers.append(threading.current_thread().name)
        return original(data, path, **options)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", recording)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit([checkpoint], epochs=2)
    assert len(writers) == 4
    assert all(name.startswith("hookline-checkpoint-writer") for name in writers)
    assert len(list(tmp_path.glob("*.pt"))) == 3  # two epochs and last.pt, all on disk


def test_template_naming_a_missing_metric_fails_at_first_save(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}-{val_f1:.2f}")
    recorder = RecordingCallback(events=("on_train_epoch_start",))
    with pytest.raises(ValueError, match=r"names 'val_f1', which is not among.*\['loss'\]"):
        fit([checkpoint, recorder], epochs=3)
    assert len(recorder.events) == 1 and files(tmp_path) == []  # raised at epoch 0's save


def test_missing_monitor_raises(tmp_path):
    with pytest.raises(ValueError, match="monitors 'val_loss', which is not among"):
        fit([ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", save_top_k=1)], epochs=1)


def test_default_folder_is_under_save_dir(tmp_path):
    checkpoint = ModelCheckpoint(filename="m-{epoch}")
    fit([checkpoint], epochs=1, save_dir=tmp_path)
    assert files(tmp_path / "checkpoints") == ["m-0.pt"]


def test_no_folder_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="pass dirpath= or filepath=, or give the Trainer"):
        fit([ModelCheckpoint()], epochs=1)


def test_writes_leave_no_temporary_files(tmp_path):
    fit([ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", save_top_k=2,
                         save_last=True)], epochs=4)
    assert files(tmp_path) == ["last.pt", "m-2.pt", "m-3.pt"]  # no .m-*.tmp left behind


@pytest.mark.parametrize("options, message", [
    (dict(dirpath="d", save_top_k=-2), r"save_top_k=-2.*-1 \(keep all\), 0"),
    (dict(dirpath="d", mode="up", monitor="val_loss"), r"mode='up'"),
    (dict(filepath="a.pt", dirpath="d"), r"either filepath .* or dirpath and filename"),
    (dict(dirpath="d", every_n_epochs=2, every_n_train_steps=3), r"choose one of"),
    (dict(dirpath="d", every_n_epochs=0), r"every_n_epochs=0.*integer >= 1"),
    (dict(dirpath="d", train_time_interval=-5), r"train_time_interval=.*positive"),
    (dict(dirpath="d", filename="m-{epoch"), r"not a valid template"),
    (dict(dirpath="d", filename="m-{}"), r"empty field"),
    (dict(dirpath="d", save_best_only=True, save_top_k=3), r"contradict"),
    (dict(dirpath="d", initial_value_threshold=1.0), r"needs monitor="),
    (dict(dirpath="d", monitor="val_thing"), r"cannot tell whether 'val_thing'"),
])
def test_bad_options_raise_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(**options)


def test_state_key_differs_by_monitor_and_both_are_saved(tmp_path):
    by_loss = ModelCheckpoint(dirpath=tmp_path / "a", monitor="val_loss", save_top_k=1)
    by_acc = ModelCheckpoint(dirpath=tmp_path / "b", monitor="val_accuracy", save_top_k=1)
    assert by_loss.state_key != by_acc.state_key
    scripted = ScriptedMetrics({"val_loss": [2, 1], "val_accuracy": [0.1, 0.2]})
    trainer = fit([scripted, by_loss, by_acc], epochs=2)
    states = trainer.callbacks.state_dict()
    assert states[by_loss.state_key]["best_model_score"] == 1
    assert states[by_acc.state_key]["best_model_score"] == 0.2


def test_resumed_state_continues_top_k(tmp_path):
    first = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_loss",
                            save_top_k=2)
    fit([ScriptedMetrics({"val_loss": [3, 1, 2]}), first], epochs=3)
    assert files(tmp_path) == ["m-1.pt", "m-2.pt"]
    resumed = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_loss",
                              save_top_k=2)
    resumed.load_state_dict(first.state_dict())
    fit([ScriptedMetrics({"val_loss": [9, 9, 9, 2.5, 1.5]}), resumed], epochs=5,
        initial_epoch=3)
    # 2.5 does not enter the loaded top 2 (1, 2); 1.5 pushes out the file of 2
    assert files(tmp_path) == ["m-1.pt", "m-4.pt"]
    assert resumed.best_model_path == str(tmp_path / "m-1.pt")


def test_instance_reused_without_loading_starts_over(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_loss",
                                 save_top_k=1)
    fit([ScriptedMetrics({"val_loss": [1, 2]}), checkpoint], epochs=2)
    fit([ScriptedMetrics({"val_loss": [5, 4]}), checkpoint], epochs=2)
    assert checkpoint.best_model_score == 4  # the first run's 1 is not carried over


def test_an_instance_reused_under_another_save_dir_saves_and_resumes_there(tmp_path):
    checkpoint = ModelCheckpoint(filename="m-{epoch}")  # the default folder: save_dir's
    fit([checkpoint], epochs=1, save_dir=tmp_path / "a")
    assert files(tmp_path / "a" / "checkpoints") == ["m-0.pt"]
    # a second trainer with its own save_dir: its files go there, and resume=True does not
    # find the first run's checkpoint through the folder the callback resolved for it
    with pytest.warns(RuntimeWarning, match="found no checkpoint"):
        second = fit([checkpoint], epochs=1, save_dir=tmp_path / "b", resume=True)
    assert second.resumed_from is None
    assert files(tmp_path / "b" / "checkpoints") == ["m-0.pt"]
    assert files(tmp_path / "a" / "checkpoints") == ["m-0.pt"]
    assert checkpoint.checkpoint_dir == tmp_path / "b" / "checkpoints"


def test_a_resume_whose_ranking_is_empty_keeps_nothing_of_the_last_fit(tmp_path):
    def checkpoint_fit(checkpoint, *callbacks, **options):
        return fit([ScriptedMetrics({"val_loss": [3, 1, 2]}), checkpoint, *callbacks],
                   epochs=3, samples=32, **options)

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="s-{step}",
                                 monitor="val_loss", save_top_k=1, save_last=True,
                                 every_n_train_steps=1)
    with pytest.raises(Crash):  # step 1: before the first validation, nothing ranked yet
        checkpoint_fit(checkpoint, crash_at("on_train_batch_end", 2))
    early = tmp_path / "early.ckpt"
    early.write_bytes((tmp_path / "ckpt" / "last.pt").read_bytes())
    checkpoint_fit(checkpoint)
    assert checkpoint.best_model_score == 1
    seen = {}
    record = LambdaCallback(on_train_start=lambda trainer: seen.update(
        best=checkpoint.best_model_path, score=checkpoint.best_model_score,
        kth=checkpoint.kth_best_model_path, kth_value=checkpoint.kth_value))
    checkpoint_fit(checkpoint, record, resume=early)
    assert seen == {"best": "", "score": None, "kth": "", "kth_value": None}
    assert checkpoint.best_model_score == 1  # ranked anew by the resumed run's own saves


def test_a_saved_checkpoint_holds_its_own_ranking(tmp_path):
    """Resuming from a file must not forget that file: state is updated before writing."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}", monitor="val_loss",
                                 save_top_k=1, save_last=True)
    fit([ScriptedMetrics({"val_loss": [3, 1]}), checkpoint], epochs=2)
    for name in ("m-1.pt", "last.pt"):
        state = load_checkpoint(tmp_path / name)["callbacks"][checkpoint.state_key]
        assert state["best_k_models"] == {str(tmp_path / "m-1.pt"): 1}
        assert state["best_model_path"] == str(tmp_path / "m-1.pt")
        assert state["last_model_path"] == str(tmp_path / "last.pt")


# --- resuming from ModelCheckpoint's files --------------------------------------------------
def crash_at_batch(n):
    """Crash at the n-th training batch's end, before ModelCheckpoint could save there."""
    return crash_at("on_train_batch_end", n)


def run(callbacks, epochs=4, **options):
    """Four epochs of three shuffled batches, with validation and History."""
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(48),
                               val_data=tiny_data(16, seed=1), batch_size=16, epochs=epochs,
                               callbacks=callbacks, verbose=0, device="cpu", seed=0, **options)
    trainer.fit()
    return trainer


def history(trainer):
    return trainer.callbacks.find(hookline.History)[0]


def test_numpy_values_in_the_metrics_are_saved_as_numbers_that_load_safely(tmp_path):
    class LogsNumpy(hookline.Callback):  # before History (order 90) and the checkpoints
        def on_fit_epoch_end(self, trainer):
            trainer.metrics["half_loss"] = np.float32(trainer.metrics["loss"] / 2)
            trainer.metrics["scale"] = np.array(3.0)  # a 0-d array is no numbers.Real

    weights = ModelCheckpoint(dirpath=tmp_path / "weights", filename="m", save_weights_only=True,
                              enable_version_counter=False)  # one file, the last epoch's
    full = ModelCheckpoint(dirpath=tmp_path / "full", filename="m", enable_version_counter=False)
    trainer = run([LogsNumpy(), weights, full])
    saved = torch.load(tmp_path / "weights" / "m.pt", weights_only=True)
    assert saved["metrics"]["scale"] == 3.0 and type(saved["metrics"]["scale"]) is float
    assert type(saved["metrics"]["half_loss"]) is float
    stored = load_checkpoint(tmp_path / "full" / "m.pt")
    assert type(stored["run"]["metrics"]["scale"]) is float
    assert stored["callbacks"]["History"]["history"]["scale"] == [3.0] * 4
    assert history(trainer).history["half_loss"] == \
        [float(np.float32(loss / 2)) for loss in history(trainer).history["loss"]]


def test_a_val_monitor_saves_after_every_validation_inside_the_epoch(tmp_path):
    """Lightning's val_check_interval: each validation ranks a save, named by its step."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s{step}", monitor="val_loss")
    validated = []
    record = LambdaCallback(on_val_end=lambda v: validated.append((v.trainer.step,
                                                                   v.metrics["loss"])))
    run([checkpoint, record], val_check_interval=1, epochs=2)  # 3 batches: 2 inside each
    assert [step for step, _ in validated] == [1, 2, 3, 4, 5, 6]
    assert files(tmp_path) == [f"s{step}.pt" for step in range(1, 7)]
    assert checkpoint.best_k_models == {str(tmp_path / f"s{step}.pt"): loss
                                        for step, loss in validated}
    best_step, best = min(validated, key=lambda pair: pair[1])
    assert checkpoint.best_model_path == str(tmp_path / f"s{best_step}.pt")
    assert checkpoint.best_model_score == best
    mid = load_checkpoint(tmp_path / "s4.pt")["run"]
    assert (mid["phase"], mid["batches_done"]) == ("train", 1)  # a mid-epoch checkpoint


@pytest.mark.parametrize("options, resume_from, first_epoch, extra", [
    ({"filename": "m-{epoch}"}, "m-1.pt", 2, {}),  # after epoch 1's end
    ({"filename": "s-{step}", "every_n_train_steps": 2}, "s-4.pt", 1, {}),  # mid-epoch 1
    # saved after the validation of epoch 1's first batch (val_check_interval)
    ({"filename": "s-{step}", "monitor": "val_loss"}, "s-4.pt", 1, {"val_check_interval": 1}),
], ids=["epoch", "mid-epoch", "mid-epoch-validation"])
def test_resume_from_a_checkpoint_file_is_exact(tmp_path, options, resume_from, first_epoch,
                                                extra):
    expected = run([], **extra)
    with pytest.raises(Crash):
        run([ModelCheckpoint(dirpath=tmp_path, **options), crash_at_batch(8)],  # in epoch 2
            **extra)
    epochs = RecordingCallback(capture=("epoch",), events=("on_train_epoch_start",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact, and every callback's state is claimed
        resumed = run([ModelCheckpoint(dirpath=tmp_path, **options), epochs],
                      resume=tmp_path / resume_from, **extra)
    assert [snapshot["epoch"] for _, snapshot in epochs.records] == list(range(first_epoch, 4))
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    # History (order 90) is saved in the file with the epoch it was written at, so no epoch
    # is lost or repeated
    assert history(resumed).epoch == [0, 1, 2, 3]
    assert history(resumed).history == history(expected).history


def test_resume_true_finds_the_newest_file_in_checkpoint_dir(tmp_path):
    folder = tmp_path / "ckpt"
    with pytest.raises(Crash):
        run([ModelCheckpoint(dirpath=folder, filename="m-{epoch}", save_last=True),
             ModelCheckpoint(dirpath=folder / "weights", save_weights_only=True),
             crash_at_batch(8)])
    epochs = RecordingCallback(capture=("epoch",), events=("on_train_epoch_start",))
    resumed = run([ModelCheckpoint(dirpath=folder, filename="m-{epoch}", save_last=True),
                   ModelCheckpoint(dirpath=folder / "weights", save_weights_only=True),
                   epochs], resume=True)
    assert resumed.resumed_from == folder / "last.pt"  # weights-only files are not candidates
    assert [snapshot["epoch"] for _, snapshot in epochs.records] == [2, 3]
    for name, tensor in run([]).model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


# --- templates: every field available or an error; version counter ---------------------------
def test_a_step_save_naming_a_metric_that_is_never_logged_raises_at_the_first_save(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="s-{step}-{val_acc:.2f}",
                                 every_n_train_steps=1)
    with pytest.raises(ValueError, match=r"names 'val_acc', which is not among the values "
                                         r"available.*epoch, step, batch and the metrics"
                                         r".*Mid-epoch saves"):
        fit([checkpoint], epochs=2, samples=32, val_data=tiny_data(samples=16))
    assert files(tmp_path) == []  # raised at the first save, not skipped for the whole run


def test_step_batch_and_epoch_fields_fill_mid_epoch_names(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="e{epoch}-b{batch}-s{step:03d}",
                                 every_n_train_steps=2)
    fit([checkpoint], epochs=2, samples=64)  # 4 batches an epoch
    assert files(tmp_path) == ["e0-b1-s002.pt", "e0-b3-s004.pt", "e1-b1-s006.pt",
                               "e1-b3-s008.pt"]


@pytest.mark.parametrize("options, message", [
    ({"filename": "m-{epoch.real}"}, r"field \{epoch\.real\}.*plain names"),
    ({"filename": "m-{0}"}, r"field \{0\}.*no positions"),
    ({"filename": "m-{val_loss[0]}"}, r"field \{val_loss\[0\]\}"),
    ({"filename": "m-{step:.2s}"}, r"\{step:\.2s\} is not a format for an integer"),
    ({"filepath": ""}, r"filepath=''.*names no file"),
])
def test_templates_that_cannot_be_filled_raise_at_construction(tmp_path, options, message):
    if "filepath" not in options:
        options = {"dirpath": tmp_path, **options}
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(**options)


def test_an_empty_filename_means_the_default_name(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="")
    fit([checkpoint], epochs=1, samples=32)
    assert files(tmp_path) == ["epoch=0-step=2.pt"]  # not a hidden ".pt"
    resumed = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(32),
                               batch_size=16, epochs=2, callbacks=[ModelCheckpoint(
                                   dirpath=tmp_path, filename="")],
                               default_callbacks=False, verbose=0, device="cpu", seed=0,
                               resume=True)
    resumed.fit()
    assert resumed.start_epoch == 1  # resume=True found the file


def test_a_repeated_name_gets_a_version_instead_of_being_overwritten(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m")
    fit([checkpoint], epochs=3)
    assert files(tmp_path) == ["m-v1.pt", "m-v2.pt", "m.pt"]
    assert [read_checkpoint_info(tmp_path / name)["epoch"]
            for name in ("m.pt", "m-v1.pt", "m-v2.pt")] == [0, 1, 2]
    assert checkpoint.best_model_path == str(tmp_path / "m-v2.pt")  # the latest: ranked by recency


def test_a_file_of_an_earlier_run_is_not_overwritten(tmp_path):
    (tmp_path / "m-0.pt").write_bytes(b"an earlier run's file")
    fit([ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}")], epochs=1)
    assert (tmp_path / "m-0.pt").read_bytes() == b"an earlier run's file"
    assert read_checkpoint_info(tmp_path / "m-0-v1.pt")["epoch"] == 0


def test_a_name_pushed_out_of_the_top_k_is_reused_not_versioned(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val_loss",
                                 save_top_k=1)
    fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), checkpoint], epochs=3)
    assert files(tmp_path) == ["best.pt"]
    assert read_checkpoint_info(tmp_path / "best.pt")["epoch"] == 2


def test_without_the_version_counter_a_repeated_name_is_overwritten(tmp_path):
    fit([ModelCheckpoint(dirpath=tmp_path, filename="m", enable_version_counter=False)],
        epochs=3)
    assert files(tmp_path) == ["m.pt"]
    assert read_checkpoint_info(tmp_path / "m.pt")["epoch"] == 2


def test_a_name_with_a_validation_metric_waits_for_the_epochs_that_validate(tmp_path):
    """check_val_every_n_epoch=2: an unmonitored checkpoint whose name holds {val_loss} saves
    the epochs that validated (as Lightning saves after validation), and last.pt every epoch;
    before, the first epoch's save raised for a missing val_loss."""
    x, y = tiny_data(samples=16)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="m-{epoch}-{val_loss:.3f}",
                                 save_top_k=-1, save_last=True, background=False)
    saved = []
    trainer = fit([checkpoint, LambdaCallback(on_model_save=lambda t: saved.append(t.epoch))],
                  4, val_data=(x, y), check_val_every_n_epoch=2)
    names = [name for name in files(tmp_path) if name != "last.pt"]
    assert [name.split("-")[1] for name in names] == ["1", "3"]
    assert names[-1] == f"m-3-{trainer.metrics['val_loss']:.3f}.pt"
    assert "last.pt" in files(tmp_path) and saved == [0, 1, 2, 3]

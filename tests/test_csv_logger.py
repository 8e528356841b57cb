"""CSVLogger: header, stable columns, empty cells, flush per row, append and resume."""

from __future__ import annotations

import csv
import warnings

import pytest

from hookline import Trainer
from hookline.callbacks import CSVLogger, History, LambdaCallback
from hookline.testing import tiny_data, tiny_model


def _fit(callbacks, *, epochs=3, initial_epoch=0, val=True):
    x, y = tiny_data(48)
    xv, yv = tiny_data(16, seed=1)
    trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                      val_data=(xv, yv) if val else None, epochs=epochs, batch_size=16,
                      seed=0, verbose=0, initial_epoch=initial_epoch, callbacks=callbacks)
    trainer.fit()
    return trainer


def _rows(path, separator=","):
    with open(path, newline="") as file:
        return list(csv.reader(file, delimiter=separator))


def test_header_has_epoch_first_then_the_first_epochs_keys_and_rows_match_history(tmp_path):
    path = tmp_path / "sub" / "log.csv"
    trainer = _fit([CSVLogger(path)])
    history = trainer.callbacks.find(History)[0].history
    rows = _rows(path)
    assert rows[0] == ["epoch", "loss", "val_loss", "val_accuracy"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for column, name in enumerate(rows[0][1:], start=1):
        assert [float(row[column]) for row in rows[1:]] == history[name]  # full precision


def test_missing_values_are_empty_and_late_keys_are_ignored_with_one_warning(tmp_path):
    path = tmp_path / "log.tsv"

    def add(trainer):
        if trainer.epoch == 0:
            trainer.metrics["early"] = 1.5
        else:
            trainer.metrics["late"] = 2.5

    adder = LambdaCallback(on_fit_epoch_end=add)
    adder.order = -10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit([adder, CSVLogger(path, separator="\t")])
    late = [w for w in caught if "first appeared" in str(w.message)]
    assert len(late) == 1 and "'late'" in str(late[0].message)
    rows = _rows(path, "\t")
    assert rows[0] == ["epoch", "loss", "val_loss", "val_accuracy", "early"]
    assert [row[-1] for row in rows[1:]] == ["1.5", "", ""]
    assert all(len(row) == 5 for row in rows)


def test_every_row_is_on_disk_when_the_epoch_ends(tmp_path):
    path = tmp_path / "log.csv"
    seen = []
    reader = LambdaCallback(on_fit_epoch_end=lambda t: seen.append(len(_rows(path))))
    reader.order = 81  # right after the logger, while its file is still open
    _fit([CSVLogger(path), reader])
    assert seen == [2, 3, 4]  # header + one row per finished epoch


def test_append_continues_the_file_without_a_second_header(tmp_path):
    path = tmp_path / "log.csv"
    _fit([CSVLogger(path)], epochs=2)
    _fit([CSVLogger(path, append=True)], epochs=2)
    rows = _rows(path)
    assert [row[0] for row in rows] == ["epoch", "0", "1", "0", "1"]
    _fit([CSVLogger(path)], epochs=1)  # append=False starts over
    assert [row[0] for row in _rows(path)] == ["epoch", "0"]


def test_append_keeps_the_existing_header_even_when_the_keys_differ(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,9.0\n")
    with pytest.warns(RuntimeWarning, match="val_loss"):
        _fit([CSVLogger(path, append=True)], epochs=1)
    rows = _rows(path)
    assert rows[0] == ["epoch", "loss"] and len(rows) == 3 and len(rows[2]) == 2


def test_resume_keeps_the_columns_and_drops_rows_of_epochs_trained_again(tmp_path):
    path = tmp_path / "log.csv"
    first = CSVLogger(path)
    _fit([first], epochs=4)  # rows 0..3; pretend the checkpoint was taken after epoch 1
    state = first.state_dict()
    assert state == {"columns": ["epoch", "loss", "val_loss", "val_accuracy"]}
    resumed = CSVLogger(path)  # append=False: a resume continues the file anyway
    resumed.load_state_dict(state)
    _fit([resumed], epochs=5, initial_epoch=2)
    rows = _rows(path)
    assert rows[0] == state["columns"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2", "3", "4"]


def test_state_key_names_the_file():
    assert CSVLogger("a.csv").state_key != CSVLogger("b.csv").state_key


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"filename": "log.csv", "separator": ";;"}, ValueError, "one character"),
    ({"filename": "log.csv", "separator": "\n"}, ValueError, "one character"),
    ({"filename": None}, TypeError, "must be a path"),
    ({"filename": ""}, TypeError, "must be a path"),
])
def test_bad_options_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        CSVLogger(**kwargs)


def test_a_crashed_run_resumed_from_its_backup_continues_log_timer_and_plot(tmp_path,
                                                                            monkeypatch):
    """End to end with the engine's resume: BackupAndRestore backs up after every batch; the
    run crashes in epoch 2 and the same script, run again, continues it."""
    from hookline.callbacks import Timer
    from hookline.callbacks import timer as timer_module
    from hookline.callbacks.backup_and_restore import BackupAndRestore
    from hookline.loggers import PlotResults

    clock = {"now": 0.0}
    monkeypatch.setattr(timer_module, "_now", lambda: clock["now"])

    def script(crash):
        def tick(trainer):
            clock["now"] += 1.0  # one second per batch
            if crash and trainer.epoch == 2 and trainer.batch_i == 1:
                raise RuntimeError("power cut")

        ticker = LambdaCallback(on_train_batch_end=tick)
        timer, plot = Timer(None), PlotResults(tmp_path / "results.png")
        callbacks = [ticker, CSVLogger(tmp_path / "log.csv"), timer, plot,
                     BackupAndRestore(tmp_path / "backup", save_freq=1, background=False)]
        trainer = Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(48),
                          epochs=5, batch_size=16, seed=0, verbose=0, callbacks=callbacks)
        trainer.fit()
        return trainer, timer, plot

    with pytest.raises(RuntimeError, match="power cut"):
        script(crash=True)
    assert [row[0] for row in _rows(tmp_path / "log.csv")] == ["epoch", "0", "1"]
    trainer, timer, plot = script(crash=False)
    assert trainer.resumed
    assert [row[0] for row in _rows(tmp_path / "log.csv")] == ["epoch", "0", "1", "2", "3", "4"]
    # 3 batches an epoch: the backup after epoch 2's first batch held 7 s; 8 batches remained
    assert timer.elapsed == 15.0
    assert plot.plotted["loss"]["loss"][0] == [1.0, 2.0, 3.0, 4.0, 5.0]

"""CSVLogger: one row of metrics per epoch in a CSV file, readable while training runs."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import IO, Any

from hookline.callback import Callback
from hookline.checkpoint import atomic_write_bytes, remove_stale_temps
from hookline.plain_number import plain_number
from hookline.user_warning import warn

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Write ``trainer.metrics`` to a CSV file after every epoch (Keras' ``CSVLogger``).

    Args:
        filename: the CSV file; its folder is created when missing.
        separator: the field separator (one character).
        append: continue an existing file instead of overwriting it; its header is kept and
            no second header is written.

    Columns: ``epoch`` (0-based, as Keras writes it) first, then the metrics in the order the
    first logged epoch produced them; a first epoch that did not validate also gets the
    columns validation will fill (the ``val_`` twins and validation's metrics). The header
    never changes: a metric that first appears in a later epoch is not written (rewriting the
    header would break readers tailing the file) and one warning names it; a metric missing
    from an epoch is written as an empty field.
    Every row is flushed, so the file is complete up to the last finished epoch.

    On resume (``load_state_dict``) the file is continued, and rows of epochs at or after the
    resumed epoch - written after the checkpoint, and about to be trained again - are dropped.

    Example::

        from hookline.callbacks import CSVLogger
        trainer = Trainer(model, loss="cross_entropy", train_data=(x, y), epochs=3,
                          callbacks=[CSVLogger("runs/log.csv")])
        trainer.fit()  # runs/log.csv: epoch,loss,val_loss,val_accuracy + 3 rows
    """

    order = 80  # after the callbacks that add metrics (lr, throughput) at on_fit_epoch_end
    on_error = "warn"  # a failing log (disk full...) warns and never ends the run
    rank_zero_only = True  # in a distributed run one process writes (or prints)

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False) -> None:
        if not isinstance(filename, (str, os.PathLike)) or not str(filename):
            raise TypeError(f"CSVLogger(filename=...) must be a path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1 or separator in '"\r\n':
            raise ValueError(f"CSVLogger(separator=...) must be one character other than a "
                             f"quote or a newline, got {separator!r}; e.g. ',' or '\\t'")
        self.filename = Path(filename)
        self.separator = separator
        self.append = bool(append)
        self.columns: list[str] | None = None
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._ignored: set[str] = set()
        self._resumed = False

    @property
    def state_key(self) -> str:
        return f"CSVLogger[{self.filename}]"

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns)} if self.columns else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns = list(state["columns"]) if state.get("columns") else None
        self._resumed = True

    # --- events ---------------------------------------------------------------------------
    def on_train_start(self, trainer: Any) -> None:
        self._close()
        remove_stale_temps(self.filename)  # left by a process killed mid-rewrite
        self._ignored = set()
        # a resumed run continues the file, also when its folder was moved (the state saved
        # under the old path is then not this callback's): earlier epochs' rows are kept
        resumed = self._resumed or bool(getattr(trainer, "resumed", False))
        continuing = resumed or self.append
        if resumed:
            self._drop_rows_from(trainer.start_epoch)
        if continuing and self.filename.exists() and self.filename.stat().st_size:
            header = self._read_header()
            if header:
                self.columns = header
        elif not resumed:
            self.columns = None
        self._resumed = False
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if continuing else "w"
        file = open(self.filename, mode, newline="", encoding="utf-8")  # noqa: SIM115
        self._file = file
        self._writer = csv.writer(file, delimiter=self.separator, lineterminator="\n")
        if self.columns is not None and file.tell() == 0:
            self._write(self.columns)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if self._writer is None:  # fit was entered without on_train_start (not expected)
            self.on_train_start(trainer)
        metrics = trainer.metrics
        if self.columns is None:
            self.columns = ["epoch", *(key for key in metrics if key != "epoch")]
            if getattr(trainer, "validation_skipped", False):
                # the first epoch did not validate (check_val_every_n_epoch): make room for
                # the validation columns to come, as Keras' CSVLogger does
                names = _validation_names(self.columns[1:], _validation_metrics(trainer))
                self.columns += [name for name in dict.fromkeys(names)
                                 if name not in self.columns]
            self._write(self.columns)
        new = [key for key in metrics if key not in self.columns and key not in self._ignored]
        if new:
            self._ignored.update(new)
            warn(
                f"CSVLogger: {new} first appeared in epoch {trainer.epoch}, after the header "
                f"of {self.filename} was written; these columns are not logged. Make the "
                f"callback that adds them report them from the first epoch, or log them "
                f"with another logger", RuntimeWarning)
        row = {**metrics, "epoch": trainer.epoch}
        self._write([_cell(row.get(column)) for column in self.columns])

    def on_train_end(self, trainer: Any) -> None:
        self._close()

    def teardown(self, engine: Any) -> None:
        self._close()

    # --- helpers --------------------------------------------------------------------------
    def _write(self, cells: list[str]) -> None:
        self._writer.writerow(cells)
        self._file.flush()  # type: ignore[union-attr]

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None

    def _read_header(self) -> list[str] | None:
        with open(self.filename, newline="", encoding="utf-8") as file:
            return next(csv.reader(file, delimiter=self.separator), None)

    def _drop_rows_from(self, epoch: int) -> None:
        """Drop rows of ``epoch`` and later: they were written after the checkpoint we resume
        from and those epochs are about to be trained again."""
        if not self.filename.exists():
            return
        with open(self.filename, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file, delimiter=self.separator))
        if not rows or "epoch" not in rows[0]:
            return
        at = rows[0].index("epoch")
        kept = [rows[0]] + [row for row in rows[1:] if not _epoch_at_least(row, at, epoch)]
        if len(kept) == len(rows):
            return
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.separator, lineterminator="\n").writerows(kept)
        atomic_write_bytes(buffer.getvalue().encode("utf-8"), self.filename)


def _epoch_at_least(row: list[str], at: int, epoch: int) -> bool:
    try:
        return int(row[at]) >= epoch
    except (IndexError, ValueError):
        return False


def _cell(value: Any) -> str:
    if value is None:
        return ""
    number = plain_number(value)  # a 0-d tensor or numpy scalar put in the metrics too
    return str(value if number is None else number)


def _validation_metrics(trainer: Any) -> list[str]:
    """The metric names the trainer's validation computes (``accuracy`` for the default
    metrics of a classification loss), known before the first pass runs."""
    metric_set = getattr(getattr(trainer, "validator", None), "metric_set", None)
    return list(getattr(metric_set, "names", None) or [])


def _validation_names(train_names: list[str], val_metrics: list[str]) -> list[str]:
    """The validation twin of each training column (``val_loss`` for ``loss``, ``val/kl`` for
    a loss part's ``train/kl``), then ``val_<name>`` for each validation metric: validation
    computes metrics training may not (``train_metrics`` is off by default)."""
    names = []
    for name in train_names:
        if name.startswith("train/"):
            names.append("val/" + name[len("train/"):])
        elif not name.startswith(("val_", "val/", "lr", "learning_rate")):
            names.append("val_" + name)
    return names + [f"val_{name}" for name in val_metrics]

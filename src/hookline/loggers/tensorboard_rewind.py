"""Rewind TensorBoard event files to the point a resumed run continues from.

Event files are append-only: what a run logged after its last checkpoint and before a crash
stays in them, and the epochs trained again after the resume would appear twice. When a run
resumes, the scalars and histograms logged after its checkpoint are dropped from the earlier
files (each rewritten atomically, only when something is dropped), every earlier value kept.
One ``purge_step`` cannot do it: epoch values are logged at the epoch number and step values
at the optimizer step, two different units.

TensorBoard reads a folder's event files in name order, and a name is
``events.out.tfevents.<second>.<host>.<pid>.<n>``, ``n`` counting the writers of the process.
A resume in the same process and the same second as the run it continues (a notebook, a
test) could get a name that sorts first (``...10`` before ``...9``), and the reader would
then return the resumed steps before the earlier ones: ``wait_for_a_later_second`` prevents
that.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from hookline.files.atomic import atomic_write_bytes

__all__ = ["rewind_event_files", "wait_for_a_later_second"]


def wait_for_a_later_second(folder: str | Path) -> float:
    """Sleep until the clock's second is past every event file's in ``folder``, so a writer
    opened now names its file after theirs (at most about a second, and only when one of
    them was opened this second). Returns the seconds slept."""
    seconds = [int(part) for path in Path(folder).glob("events.out.tfevents.*")
               if (part := path.name.split(".")[3]).isdigit()]
    if not seconds:
        return 0.0
    pause = min(max(seconds) + 1 - time.time(), 1.0) + 0.01  # a clock set back: 1 s at most
    if pause <= 0.01:
        return 0.0
    time.sleep(pause)
    return pause


def rewind_event_files(folder: str | Path, *, step: int, epoch: int) -> int:
    """Drop ``step/*`` values logged after optimizer step ``step`` and ``epoch/*`` and
    ``weights/*`` values of epochs from ``epoch`` on, in every event file of ``folder``.
    Returns how many events were dropped."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        # the records as written (the plain loader converts values to another form)
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [record for record in records
                if not _after(Event.FromString(record), step, epoch)]
        if len(kept) == len(records):
            continue
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for record in kept:
            writer.write(record)
        atomic_write_bytes(buffer.getvalue(), path)
        dropped += len(records) - len(kept)
    return dropped


def _after(event: Any, step: int, epoch: int) -> bool:
    if not event.HasField("summary") or not event.summary.value:
        return False
    tag = event.summary.value[0].tag
    if tag.startswith("step/"):
        return bool(event.step > step)
    if tag.startswith(("epoch/", "weights/")):
        return bool(event.step >= epoch)
    return False  # a value this logger did not write: left alone

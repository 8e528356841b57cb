"""Rewind TensorBoard event files to the point a resumed run continues from.

Event files are append-only: what a run logged after its last checkpoint and before a crash
stays in them, and the epochs trained again after the resume would appear twice. When a run
resumes, the scalars and histograms logged after its checkpoint are dropped from the earlier
files (each rewritten atomically, only when something is dropped), every earlier value kept.
One ``purge_step`` cannot do it: epoch values are logged at the epoch number and step values
at the optimizer step, two different units.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hookline.files.atomic import atomic_write_bytes

__all__ = ["rewind_event_files"]


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

"""Checkpoint files: written atomically, verified on load, loaded safely.

Two kinds of files:

* **weights files** (``save_weights`` / ``load_weights``): ``torch.save`` of
  ``{"model": state_dict, ...}``; plain ``torch.load`` reads them too.
* **full checkpoints** (``build_checkpoint`` -> ``write_checkpoint`` or ``CheckpointWriter``
  -> ``load_checkpoint`` -> ``hookline.resume.restore``): everything a run needs to continue
  exactly where it stopped. On disk a full checkpoint is::

      HOOKLINE-CHECKPOINT\\n                                  magic line
      {"version": 1, "size": N, "sha256": "...", ...}\\n      one JSON header line
      N bytes                                                torch.save of the payload

  The header is checked before anything is unpickled, so a truncated file, random bytes or a
  damaged byte is reported (naming the file) and never reaches the unpickler.

Every write goes to a temporary file in the target folder, is flushed and fsynced, renamed over
the final name, and the folder is fsynced: a crash at any moment leaves the previous file or the
new one, never half a file under the final name. Loading uses ``torch.load(weights_only=True)``:
only tensors and plain data come out of a file and no code in it runs. ``trusted=True`` is the
explicit opt-in to full unpickling, for files you made yourself.

This module is the public face; the work is done by small modules with one job each:
``hookline.files.atomic`` (atomic, durable writes), ``hookline.files.checkpoint_format`` (the
file format: header, verification, safe loading, weights files),
``hookline.files.checkpoint_writer`` (the background writer) and ``hookline.checkpoint_payload``
(``build_checkpoint``, the only part that reads a trainer).
"""

from __future__ import annotations

from hookline.checkpoint_payload import build_checkpoint
from hookline.files.atomic import atomic_path, atomic_write_bytes, remove_stale_temps
from hookline.files.checkpoint_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAGIC,
    MODEL_MAGIC,
    check_loadable,
    check_model_state,
    load_checkpoint,
    load_weights,
    read_checkpoint_info,
    save_weights,
    serialize_checkpoint,
    verify_checkpoint,
    write_checkpoint,
)
from hookline.files.checkpoint_writer import SERIALIZE_IN_LOOP_BYTES, CheckpointWriter
from hookline.files.errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointVersionError,
    CheckpointWriteError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MAGIC", "MODEL_MAGIC", "SERIALIZE_IN_LOOP_BYTES", "CheckpointError",
    "CheckpointMismatchError", "CheckpointVersionError", "CheckpointWriteError",
    "CheckpointWriter", "CorruptCheckpointError", "UnsafeCheckpointError", "atomic_path",
    "atomic_write_bytes", "build_checkpoint", "check_loadable", "check_model_state",
    "load_checkpoint", "load_weights", "read_checkpoint_info", "remove_stale_temps",
    "save_weights", "serialize_checkpoint", "verify_checkpoint", "write_checkpoint",
]

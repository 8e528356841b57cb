"""Files written atomically get the permissions of any new file (0o666 less the umask)."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from hookline.checkpoint import (
    CheckpointWriter,
    atomic_path,
    atomic_write_bytes,
    save_weights,
    write_checkpoint,
)
from hookline.testing import tiny_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_atomic_writer_gives_the_usual_mode(tmp_path, umask):
    expected = 0o666 & ~umask  # 0o644 or 0o640, never mkstemp's 0o600
    atomic_write_bytes(b"epoch,loss\n", tmp_path / "results.csv")
    with atomic_path(tmp_path / "results.png") as temporary:
        temporary.write_bytes(b"png")  # a library writing the file itself
    save_weights(tiny_model(), tmp_path / "weights.pt")
    write_checkpoint({"run": {}}, tmp_path / "full.ckpt")
    writer = CheckpointWriter()
    writer.save({"run": {}}, tmp_path / "background.ckpt")
    writer.wait()
    for name in ("results.csv", "results.png", "weights.pt", "full.ckpt", "background.ckpt"):
        assert oct(mode(tmp_path / name)) == oct(expected), name


def test_a_rewrite_gets_the_usual_mode_too(tmp_path, umask):
    """CSVLogger rewrites its file on resume; the replaced file keeps no odd mode."""
    target = tmp_path / "results.csv"
    atomic_write_bytes(b"a\n", target)
    atomic_write_bytes(b"a\nb\n", target, previous=tmp_path / "results.csv.bak")
    assert mode(target) == 0o666 & ~umask
    assert target.read_bytes() == b"a\nb\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

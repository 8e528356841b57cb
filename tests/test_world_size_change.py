"""A run saved with N ranks continues with M (real torchrun, gloo on CPU, and one process):
2 -> 1, 1 -> 2 and 2 -> 3 at an epoch boundary, from the saved epoch with the saved weights on
every rank, the old run's backups kept until the new run holds its own on every rank; a
mid-epoch backup goes back to an epoch boundary or is an error; two runs' backups at one point
are never mixed.

Starting a torchrun job costs seconds on a small machine, so one two-rank job runs several
steps (tests/world_size_child.py's ``follow``) for the tests below."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hookline.checkpoint import CheckpointMismatchError, load_checkpoint, read_checkpoint_info

sys.path.insert(0, str(Path(__file__).parent))
from world_size_child import listing, train

CHILD = Path(__file__).parent / "world_size_child.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(ranks: int, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(CHILD), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def records(out: Path, tag: str, ranks: int) -> list[dict[str, Any]]:
    for r in range(ranks):
        failed = out / f"{tag}-rank{r}.err"
        assert not failed.exists(), f"{tag} failed on rank {r}: {failed.read_text()}"
    return [torch.load(out / f"{tag}-rank{r}.pt") for r in range(ranks)]


def assert_same(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(state[name], value), name


def header_worlds(folder: Path) -> dict[str, int]:
    return {path.relative_to(folder).as_posix(): read_checkpoint_info(path)["world_size"]
            for path in sorted(folder.rglob("*.ckpt"))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Runs interrupted after epoch 1 (backups after epochs 0 and 1): ``a`` and ``b`` with
    two ranks (b with another learning rate), ``one`` in one process; then, in the same
    two-rank job, ``one`` resumed on two ranks, a mid-epoch backup made from ``a``, and two
    folders mixing a's and b's rank backups, resumed."""
    root = tmp_path_factory.mktemp("world")
    out = root / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="crash at the start of epoch 2"):
        train(out, root / "one", "one-save", crash_epoch=2)
    one_before = listing(root / "one")
    one_latest = load_checkpoint(root / "one" / "latest.ckpt")
    a, b = root / "a", root / "b"
    plan = [
        {"run": {"backups": str(a), "tag": "a", "crash_epoch": 2}},
        {"run": {"backups": str(b), "tag": "b", "crash_epoch": 2, "lr": 0.02}},
        {"run": {"backups": str(root / "one"), "tag": "one-to-two"}},
        # the same world size, now backing up every 5 batches: rank 0 ends with a mid-epoch
        # latest.ckpt and the epoch boundary before it as previous.ckpt
        {"copy": [str(a), str(root / "mid")]},
        {"run": {"backups": str(root / "mid"), "tag": "mid", "save_freq": 5,
                 "crash_epoch": 3}},
        # rank 1's latest from run b, everything else from run a: only previous is one run's
        {"copy": [str(a / "rank0"), str(root / "mixed" / "rank0")]},
        {"copy": [str(b / "rank1" / "latest.ckpt"), str(root / "mixed/rank1/latest.ckpt")]},
        {"copy": [str(a / "rank1" / "previous.ckpt"),
                  str(root / "mixed/rank1/previous.ckpt")]},
        {"copy": [str(root / "mixed"), str(root / "mixed-before")]},
        {"run": {"backups": str(root / "mixed"), "tag": "mixed"}},
        # rank 0 holds only run a's backups, rank 1 only run b's, at the same points
        {"copy": [str(a / "rank0"), str(root / "apart" / "rank0")]},
        {"copy": [str(b / "rank1"), str(root / "apart" / "rank1")]},
        {"run": {"backups": str(root / "apart"), "tag": "apart"}},
    ]
    done = torchrun(2, str(out), "plan", json.dumps(plan))
    assert done.returncode == 0, done.stderr[-4000:]
    return SimpleNamespace(root=root, out=out, a=a, b=b, one=root / "one",
                           one_before=one_before, one_latest=one_latest, mid=root / "mid",
                           mixed=root / "mixed", mixed_before=root / "mixed-before",
                           apart=root / "apart")


def test_a_two_rank_run_continues_in_one_process(saved: SimpleNamespace, tmp_path: Path) -> None:
    backups = tmp_path / "backup"
    shutil.copytree(saved.a, backups)
    before = listing(backups)
    expected = load_checkpoint(backups / "rank0" / "latest.ckpt")
    with pytest.warns(RuntimeWarning, match=r"saved by a run with 2 rank\(s\) and this run has "
                                            r"1: every rank continues from rank 0's state "
                                            r"after 2 epoch\(s\).*not bitwise equal"):
        train(tmp_path, backups, "alone")
    record = torch.load(tmp_path / "alone-rank0.pt")
    assert record["start_epoch"] == 2  # the saved epoch, not a fresh start
    assert record["resumed_from"] == str(backups / "rank0" / "latest.ckpt")
    assert_same(record["start"], expected["model"])
    # nothing of the two-rank run was touched before this run's first backup
    assert record["files_before_first_backup"] == before
    # the data follows one process: 12 batches per epoch instead of 6 per rank
    assert record["step"] == expected["run"]["step"] + 2 * 12
    # once this run's own backups existed, the two-rank layout was removed
    assert header_worlds(backups) == {"latest.ckpt": 1, "previous.ckpt": 1}
    assert sorted(path.name for path in backups.iterdir()) == ["latest.ckpt", "previous.ckpt"]


def test_a_one_process_run_continues_on_two_ranks(saved: SimpleNamespace) -> None:
    ranks = records(saved.out, "one-to-two", 2)
    for rank in ranks:
        assert rank["start_epoch"] == 2 and rank["world"] == 2
        assert rank["resumed_from"] == str(saved.one / "latest.ckpt")
        assert_same(rank["start"], saved.one_latest["model"])
        # the one-process backups were all there, unchanged, before each rank's first backup
        seen = rank["files_before_first_backup"]
        assert {name: seen.get(name) for name in saved.one_before} == saved.one_before
        assert rank["step"] == saved.one_latest["run"]["step"] + 2 * 6  # 6 batches per rank
    assert_same(ranks[1]["final"], ranks[0]["final"])  # every rank ends with the same weights
    assert header_worlds(saved.one) == {f"rank{r}/{name}": 2 for r in (0, 1)
                                        for name in ("latest.ckpt", "previous.ckpt")}


def test_a_two_rank_run_continues_on_three_even_after_a_kill_during_the_switch(
        saved: SimpleNamespace, tmp_path: Path) -> None:
    backups = tmp_path / "backup"
    shutil.copytree(saved.a, backups)
    chosen = (backups / "rank0" / "latest.ckpt").read_bytes()
    expected = load_checkpoint(backups / "rank0" / "latest.ckpt")
    # rank 2 dies at its first epoch end, once ranks 0 and 1 have written their first backups
    done = torchrun(3, str(tmp_path), str(backups), "killed", json.dumps({"die_rank": 2}))
    assert done.returncode != 0 and "rank 2 dies before its first backup" in done.stderr
    assert header_worlds(backups / "rank0") == {"latest.ckpt": 3, "previous.ckpt": 2}
    assert not (backups / "rank2").exists() or not list((backups / "rank2").iterdir())
    # the two-rank backup every rank resumed from is still there (rotated, not dropped)
    assert (backups / "rank0" / "previous.ckpt").read_bytes() == chosen
    done = torchrun(3, str(tmp_path), str(backups), "three", "{}")
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count("saved by a run with 2 rank(s) and this run has 3") == 1  # rank 0
    ranks = records(tmp_path, "three", 3)
    for rank in ranks:
        assert rank["start_epoch"] == 2 and rank["world"] == 3
        assert rank["resumed_from"] == str(backups / "rank0" / "previous.ckpt")
        assert_same(rank["start"], expected["model"])
        assert rank["step"] == expected["run"]["step"] + 2 * 4  # 16 samples per rank
    for rank in ranks[1:]:
        assert_same(rank["final"], ranks[0]["final"])
    assert header_worlds(backups) == {f"rank{r}/{name}": 3 for r in (0, 1, 2)
                                      for name in ("latest.ckpt", "previous.ckpt")}


def test_a_mid_epoch_backup_goes_back_to_an_epoch_boundary_or_is_an_error(
        saved: SimpleNamespace, tmp_path: Path) -> None:
    assert read_checkpoint_info(saved.mid / "rank0" / "latest.ckpt")["phase"] == "train"
    backups = tmp_path / "back"
    shutil.copytree(saved.mid, backups)
    boundary = load_checkpoint(backups / "rank0" / "previous.ckpt")
    with pytest.warns(RuntimeWarning, match=r"passing over the newer backup\(s\) .*rank0/"
                                            r"latest.ckpt \(in epoch 2 after 5 batches, 2 "
                                            r"rank\(s\).*goes back to .*rank0/previous.ckpt"):
        train(tmp_path, backups, "back")
    record = torch.load(tmp_path / "back-rank0.pt")
    assert record["start_epoch"] == 2
    assert_same(record["start"], boundary["model"])
    # without an epoch boundary to go back to: an error naming both world sizes and the fix
    stuck = tmp_path / "stuck"
    shutil.copytree(saved.mid, stuck)
    (stuck / "rank0" / "previous.ckpt").unlink()
    before = listing(stuck)
    with pytest.raises(CheckpointMismatchError, match=r"middle of an epoch by a run with 2 "
                                                      r"rank\(s\).*this run has 1.*Resume it "
                                                      r"with 2 rank\(s\).*save_freq=\"epoch\""):
        train(tmp_path, stuck, "stuck")
    assert listing(stuck) == before  # nothing deleted
    # the same file given as resume=: refused by the resume itself
    with pytest.raises(CheckpointMismatchError, match=r"saved in the middle of epoch 2 \(after "
                                                      r"5 batches\) by a run with 2 rank\(s\), "
                                                      r"and this run has 1"):
        train(tmp_path, tmp_path / "unused", "explicit",
              resume=str(stuck / "rank0" / "latest.ckpt"))


def test_two_runs_rank_backups_at_one_point_are_never_mixed(saved: SimpleNamespace) -> None:
    run_a = read_checkpoint_info(saved.a / "rank0" / "latest.ckpt")["run_id"]
    run_b = read_checkpoint_info(saved.b / "rank1" / "latest.ckpt")["run_id"]
    assert run_a != run_b and run_a == read_checkpoint_info(
        saved.a / "rank1" / "latest.ckpt")["run_id"]  # one run id for every rank of a run
    assert read_checkpoint_info(saved.b / "rank1" / "latest.ckpt")["step"] == \
        read_checkpoint_info(saved.a / "rank0" / "latest.ckpt")["step"]
    # latest.ckpt is at one point on both ranks but from two runs: previous.ckpt is one run's
    ranks = records(saved.out, "mixed", 2)
    expected = load_checkpoint(saved.mixed_before / "rank0" / "previous.ckpt")
    for r, rank in enumerate(ranks):
        assert rank["resumed_from"] == str(saved.mixed / f"rank{r}" / "previous.ckpt")
        assert rank["start_epoch"] == 1
        assert_same(rank["start"], expected["model"])
    assert_same(ranks[1]["final"], ranks[0]["final"])
    # no point of one run on every rank: an error on both ranks naming both runs
    for r in (0, 1):
        assert (saved.out / f"apart-rank{r}.err").exists(), "it resumed, mixing the two runs"
        message = (saved.out / f"apart-rank{r}.err").read_text()
        assert "share no intact point" in message and "they come from different runs" in message
        assert f"run {run_a}" in message and f"run {run_b}" in message
    assert sorted(listing(saved.apart)) == [f"rank{r}/{name}" for r in (0, 1)
                                            for name in ("latest.ckpt", "previous.ckpt")]

"""Scale-out under torchrun: two CPU processes (gloo) train one model, agree on stopping, and
resume together from their backups after a crash."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from hookline.testing import tiny_data, tiny_model

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    import hookline
    from hookline import distributed
    from hookline.testing import tiny_data, tiny_model

    assert distributed.init_from_env("gloo")
    out, rank, wrapper = Path(sys.argv[1]), distributed.rank(), sys.argv[2]
    x, y = tiny_data(samples=32)
    saves = []
    model = tiny_model()
    if wrapper == "ddp":  # a script written for a hand-made DDP loop, handed over as it is
        model = torch.nn.parallel.DistributedDataParallel(model)
    elif wrapper == "dataparallel":
        model = torch.nn.DataParallel(model)

    class StopOnRankOne(hookline.Callback):
        def on_fit_epoch_end(self, trainer):
            if rank == 1 and trainer.epoch == 1:
                trainer.request_stop("rank 1 asked")

    class RankZeroOnly(hookline.Callback):
        rank_zero_only = True

        def on_train_epoch_end(self, trainer):
            saves.append(trainer.epoch)

    trainer = hookline.Trainer(model, optimizer="sgd", lr=0.1, loss="cross_entropy",
                               train_data=(x, y), val_data=(x, y), batch_size=4, epochs=5,
                               shuffle=False, device="cpu", verbose=0,
                               callbacks=[StopOnRankOne(), RankZeroOnly()])
    trainer.fit()
    forward = trainer.forward_model
    torch.save({"state": trainer.model.state_dict(), "epoch": trainer.epoch,
                "metrics": trainer.metrics, "saves": saves, "steps": trainer.step,
                "reason": trainer.stop_reason, "forward": type(forward).__name__,
                "wraps_plain": getattr(forward, "module", None) is trainer.model},
               out / f"rank{rank}.pt")
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reference(epochs: int) -> nn.Module:
    """One process, batches of 8 in order: what two ranks of 4 with averaged gradients do."""
    x, y = tiny_data(samples=32)
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for i in range(0, 32, 8):
            nn.functional.cross_entropy(model(x[i:i + 8]), y[i:i + 8]).backward()
            optimizer.step()
            optimizer.zero_grad()
    return model


def torchrun(script_text: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    script = folder / "worker.py"
    script.write_text(script_text)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script),
               str(folder), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("wrapper", ["plain", "ddp", "dataparallel"])
def test_two_ranks_train_as_one_and_stop_together(tmp_path, wrapper):
    done = torchrun(WORKER, tmp_path, wrapper)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    # the engine's one DistributedDataParallel around the plain module: a user's DDP is
    # not wrapped a second time, a DataParallel not kept inside it
    assert all(r["forward"] == "DistributedDataParallel" and r["wraps_plain"] for r in ranks)
    assert set(ranks[0]["state"]) == set(tiny_model().state_dict())  # no "module."
    # rank 1 alone asked to stop after epoch 1: both ranks stopped there, none hung
    assert [r["epoch"] for r in ranks] == [1, 1]
    assert ranks[0]["reason"] == "another rank asked to stop"
    assert ranks[1]["reason"] == "rank 1 asked"
    assert ranks[0]["steps"] == ranks[1]["steps"] == 8  # 16 samples per rank, batches of 4
    # the same weights on both ranks, equal to one process taking batches of 8
    expected = reference(epochs=2).state_dict()
    for name, value in expected.items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        assert torch.allclose(ranks[0]["state"][name], value, atol=1e-6), name
    # metrics are averaged over ranks, so every rank logs the same numbers
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    # a rank-zero-only callback ran on rank 0 alone
    assert ranks[0]["saves"] == [0, 1] and ranks[1]["saves"] == []


BACKUP_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    from torch import nn
    import hookline
    from hookline import distributed
    from hookline.callbacks import BackupAndRestore
    from hookline.testing import tiny_data

    assert distributed.init_from_env("gloo")
    out, backups, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    rank = distributed.rank()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    callbacks = [BackupAndRestore(backups, save_freq=3)]
    if rank == 1:  # rank 1's generator runs its own course: its dropout masks differ
        callbacks.append(hookline.LambdaCallback(on_train_batch_start=lambda t: torch.rand(1)))
    if mode == "crash":
        def crash(trainer):
            if trainer.epoch == 1 and trainer.batch_i == 2:  # after backups at batches 3, 6, 9
                raise RuntimeError("crash")
        callbacks.append(hookline.LambdaCallback(on_train_batch_end=crash))
    trainer = hookline.Trainer(model, optimizer="sgd", lr=0.1, loss="cross_entropy",
                               train_data=tiny_data(samples=64), val_data=tiny_data(16, seed=1),
                               batch_size=4, epochs=3, seed=5, train_metrics=True,
                               device="cpu", verbose=0, callbacks=callbacks)
    trainer.fit()
    history = trainer.callbacks.find(hookline.History)[0].history
    torch.save({"state": trainer.model.state_dict(), "history": history,
                "resumed_from": str(getattr(trainer, "resumed_from", None))},
               out / f"{mode}-rank{rank}.pt")
""")


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_ranks_resume_together_from_the_newest_backup_they_all_hold(tmp_path):
    done = torchrun(BACKUP_WORKER, tmp_path, str(tmp_path / "unused"), "full")
    assert done.returncode == 0, done.stderr[-3000:]
    crashed = tmp_path / "crashed"
    done = torchrun(BACKUP_WORKER, tmp_path, str(crashed), "crash")
    assert done.returncode != 0 and "crash" in done.stderr
    assert sorted(p.name for p in crashed.iterdir()) == ["rank0", "rank1"]  # one folder each
    # as if the kill came while rank 1 was still writing its last backup
    behind = tmp_path / "behind"
    shutil.copytree(crashed, behind)
    (behind / "rank1" / "latest.ckpt").unlink()
    # rank 1's last backup damaged since it was written (its header still reads)
    damaged = tmp_path / "damaged"
    shutil.copytree(crashed, damaged)
    flip_last_byte(damaged / "rank1" / "latest.ckpt")
    # both of rank 1's backups damaged: an error on every rank, and nothing is deleted
    ruined = tmp_path / "ruined"
    shutil.copytree(crashed, ruined)
    for name in ("latest.ckpt", "previous.ckpt"):
        flip_last_byte(ruined / "rank1" / name)
    expected = [torch.load(tmp_path / f"full-rank{r}.pt") for r in (0, 1)]
    for backups, agreed in ((crashed, "latest.ckpt"), (behind, "previous.ckpt"),
                            (damaged, "previous.ckpt")):
        done = torchrun(BACKUP_WORKER, tmp_path, str(backups), "resume")
        assert done.returncode == 0, done.stderr[-3000:]
        for r in (0, 1):
            resumed = torch.load(tmp_path / f"resume-rank{r}.pt")
            assert resumed["resumed_from"] == str(backups / f"rank{r}" / agreed)
            for name, value in expected[r]["state"].items():
                assert torch.equal(resumed["state"][name], value), (backups.name, r, name)
            assert resumed["history"] == expected[r]["history"]
        assert not backups.exists()  # every rank deleted its backups when the fit ended
        if backups is damaged:
            assert "is corrupt" in done.stderr and "falls back to an older backup" in done.stderr
    done = torchrun(BACKUP_WORKER, tmp_path, str(ruined), "resume")
    assert done.returncode != 0
    assert done.stderr.count("share no intact point") >= 2  # raised on both ranks
    assert "each one they share is damaged on some rank" in done.stderr
    assert sorted(p.name for p in (ruined / "rank0").iterdir()) == ["latest.ckpt",
                                                                     "previous.ckpt"]


ALONE_WORKER = textwrap.dedent("""
    import sys
    import hookline
    from hookline import distributed
    from hookline.testing import tiny_data, tiny_model

    assert distributed.init_from_env("gloo")
    how, distributed.EXIT_WAIT_SECONDS = sys.argv[2], float(sys.argv[3])
    rank = distributed.rank()

    def leave(trainer):  # rank 0 goes on into the next step's gradient all-reduce
        if rank == 1 and trainer.epoch == 1 and trainer.batch_i == 2:
            if how == "raise":
                raise RuntimeError("rank 1 failed alone")
            sys.exit(3)

    trainer = hookline.Trainer(tiny_model(), optimizer="sgd", lr=0.1, loss="cross_entropy",
                               train_data=tiny_data(samples=32), batch_size=4, epochs=1000,
                               device="cpu", verbose=0,
                               callbacks=[hookline.LambdaCallback(on_train_batch_end=leave)])
    trainer.fit()
""")


@pytest.mark.parametrize("how, exit_wait, marker", [
    # an uncaught error: the failing rank does not wait for the others at all (the wait is
    # set far longer than the test allows), so its peer's collective fails at once
    ("raise", 600, "rank 1 failed alone"),
    # sys.exit(3): the rank waits for the others at most EXIT_WAIT_SECONDS, then leaves
    ("exit", 2, "exitcode  : 3"),
])
def test_a_rank_that_fails_alone_ends_the_job_at_once(tmp_path, how, exit_wait, marker):
    """A rank leaving while its peer is inside a collective must not wait for it there: a
    barrier at exit would hold both until the group's timeout (30 min)."""
    started = time.monotonic()
    done = torchrun(ALONE_WORKER, tmp_path, how, str(exit_wait))
    took = time.monotonic() - started
    assert done.returncode != 0 and marker in done.stderr, done.stderr[-3000:]
    assert took < 60, f"the job took {took:.0f} s to end"


SHARD_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    import hookline
    from hookline import distributed
    from hookline.testing import tiny_model

    assert distributed.init_from_env("gloo")
    out, rank = Path(sys.argv[1]), distributed.rank()
    torch.manual_seed(1000 + rank)  # a per-rank seed, a common DDP idiom: no seed= given
    x = torch.cat([torch.arange(32.)[:, None], torch.randn(32, 7)], 1)  # column 0: sample id
    y = torch.randint(0, 3, (32,))
    seen = []
    val_set = torch.utils.data.TensorDataset(x[:13], y[:13])
    sharded = torch.utils.data.DataLoader(
        val_set, batch_size=4, sampler=torch.utils.data.DistributedSampler(val_set))
    trainer = hookline.Trainer(tiny_model(seed=0), loss="cross_entropy", train_data=(x, y),
                               val_data=sharded, batch_size=4, epochs=2, max_steps=3,
                               device="cpu", verbose=0)
    trainer.add_callback("on_train_batch_start",
                         lambda t: seen.extend(t.batch[0][:, 0].int().tolist()))
    trainer.fit()
    torch.save({"seen": seen, "steps": trainer.step, "reason": trainer.stop_reason,
                "seed": trainer.args.seed, "state": trainer.model.state_dict()},
               out / f"rank{rank}.pt")
""")


def test_ranks_shard_one_order_and_stop_together_at_max_steps(tmp_path):
    """Unseeded ranks with their own torch seeds still split one shuffled order between them
    (rank 0's seed; before, 9 of 32 samples were trained twice and 9 never), and max_steps
    ends training at that step on every rank, not at the epoch's end. A sharded validation
    DataLoader is warned about: each rank would report its own share's metrics."""
    done = torchrun(SHARD_WORKER, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [3, 3]
    assert all(r["reason"] == "max_steps=3 reached" for r in ranks)
    assert ranks[0]["seed"] == ranks[1]["seed"]
    # 3 steps of 4 samples per rank: 24 different samples, none on both ranks
    assert all(len(r["seen"]) == 12 for r in ranks)
    assert len(set(ranks[0]["seen"]) | set(ranks[1]["seen"])) == 24
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
    # a validation DataLoader sharded by a DistributedSampler: one warning, from rank 0
    assert done.stderr.count("val_data's DataLoader has a DistributedSampler") == 1

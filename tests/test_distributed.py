"""Scale-out under torchrun: two CPU processes (gloo) train one model and agree on stopping."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

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
    out, rank = Path(sys.argv[1]), distributed.rank()
    x, y = tiny_data(samples=32)
    saves = []

    class StopOnRankOne(hookline.Callback):
        def on_fit_epoch_end(self, trainer):
            if rank == 1 and trainer.epoch == 1:
                trainer.request_stop("rank 1 asked")

    class RankZeroOnly(hookline.Callback):
        rank_zero_only = True

        def on_train_epoch_end(self, trainer):
            saves.append(trainer.epoch)

    trainer = hookline.Trainer(tiny_model(), optimizer="sgd", lr=0.1, loss="cross_entropy",
                               train_data=(x, y), val_data=(x, y), batch_size=4, epochs=5,
                               shuffle=False, device="cpu", verbose=0,
                               callbacks=[StopOnRankOne(), RankZeroOnly()])
    trainer.fit()
    torch.save({"state": trainer.model.state_dict(), "epoch": trainer.epoch,
                "metrics": trainer.metrics, "saves": saves, "steps": trainer.step,
                "reason": trainer.stop_reason}, out / f"rank{rank}.pt")
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


def test_two_ranks_train_as_one_and_stop_together(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script),
               str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
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

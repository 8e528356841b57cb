"""Safe loading: a file whose unpickling would run code is refused, and the code never runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import torch

import hookline
from hookline.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAGIC,
    UnsafeCheckpointError,
    load_checkpoint,
    load_weights,
    verify_checkpoint,
)
from hookline.testing import tiny_data, tiny_model


class Payload:
    """Unpickling this calls os.mkdir(marker): code from the file running on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A well-formed hookline checkpoint (magic, header, valid checksum) with a code payload."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_NAME, "version": FORMAT_VERSION,
                "model": tiny_model().state_dict(), "evil": Payload(marker)}, buffer)
    body = buffer.getvalue()
    header = {"version": FORMAT_VERSION, "size": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + body)
    return path


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=rf"refused to load {path}.*mkdir.*"
                                                    r"trusted=True"):
        load_checkpoint(path)
    assert not marker.exists()


def test_verifying_it_checks_the_checksum_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    assert verify_checkpoint(path)["size"] > 0  # intact bytes: verified, nothing unpickled
    assert not marker.exists()


def test_resuming_from_it_is_refused_before_anything_changes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = hookline.Trainer(model, loss="cross_entropy", train_data=tiny_data(),
                               verbose=0, resume=path)
    with pytest.raises(UnsafeCheckpointError):
        trainer.fit()
    assert not marker.exists()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # and the same through auto-resume (resume=True searches the folder)
    auto = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=tiny_data(),
                            verbose=0, save_dir=tmp_path, resume=True)
    with pytest.raises(UnsafeCheckpointError):
        auto.fit()
    assert not marker.exists()


def test_a_weights_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pt"
    torch.save({"model": tiny_model().state_dict(), "evil": Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="weights-only unpickling"):
        load_weights(path)
    assert not marker.exists()


def test_trusted_true_is_the_explicit_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    payload = load_checkpoint(path, trusted=True)  # you vouch for the file: it runs
    assert marker.is_dir()
    assert set(payload["model"]) == set(tiny_model().state_dict())

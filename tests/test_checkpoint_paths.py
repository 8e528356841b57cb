"""Paths stored in a checkpoint never steer ModelCheckpoint's file operations outside its
own folder: a crafted checkpoint that passes weights-only loading cannot delete or write files
elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import hookline
from hookline.callbacks import ModelCheckpoint
from hookline.checkpoint import load_checkpoint, write_checkpoint
from hookline.testing import ScriptedMetrics, tiny_data, tiny_model


def fit(callbacks: list, epochs: int, **options: object) -> hookline.Trainer:
    x, y = tiny_data(samples=16)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               batch_size=16, epochs=epochs, callbacks=callbacks,
                               default_callbacks=False, verbose=0, device="cpu", seed=0,
                               **options)
    trainer.fit()
    return trainer


def craft(checkpoint_file: Path, out: Path, **state: object) -> Path:
    """A copy of ``checkpoint_file`` whose ModelCheckpoint state says ``state``."""
    payload = load_checkpoint(checkpoint_file)
    (key,) = [k for k in payload["callbacks"] if k.startswith("ModelCheckpoint")]
    payload["callbacks"][key].update(state)
    return write_checkpoint(payload, out)


def test_a_crafted_best_k_models_cannot_delete_a_file_outside_the_folder(tmp_path: Path) -> None:
    folder, victim = tmp_path / "ckpt", tmp_path / "precious.txt"
    sneaky = tmp_path / "other.txt"
    victim.write_text("keep me")
    sneaky.write_text("keep me too")
    options = {"filename": "m-{epoch}", "monitor": "val_loss", "save_top_k": 1}
    fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), ModelCheckpoint(dirpath=folder, **options)],
        epochs=1)
    # the victim ranks worst, so the next better save would push it out of the top 1
    crafted = craft(folder / "m-0.pt", tmp_path / "crafted.ckpt",
                    best_k_models={str(victim): 100.0, f"{folder}/../other.txt": 99.0},
                    last_model_path=str(victim))
    checkpoint = ModelCheckpoint(dirpath=folder, **options)
    with pytest.warns(RuntimeWarning, match=r"ignored 3 path.*outside its folder .*ckpt.*"
                                            r"precious\.txt.*never deleted or written"):
        fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), checkpoint], epochs=3, resume=crafted)
    assert victim.read_text() == "keep me" and sneaky.read_text() == "keep me too"
    assert str(victim) not in checkpoint.best_k_models
    # its own ranking went on (m-1 was pushed out by m-2); m-0, unlisted in the crafted state,
    # is left alone
    assert sorted(p.name for p in folder.iterdir()) == ["m-0.pt", "m-2.pt"]


def test_a_crafted_dirpath_cannot_choose_where_files_are_written(tmp_path: Path) -> None:
    save_dir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    fit([ModelCheckpoint(filename="m-{epoch}")], epochs=1, save_dir=save_dir)
    crafted = craft(save_dir / "checkpoints" / "m-0.pt", tmp_path / "crafted.ckpt",
                    dirpath=str(elsewhere))
    checkpoint = ModelCheckpoint(filename="m-{epoch}")  # its folder comes from save_dir
    fit([checkpoint], epochs=2, save_dir=save_dir, resume=crafted)
    assert not elsewhere.exists()
    assert checkpoint.dirpath == save_dir / "checkpoints"
    assert (save_dir / "checkpoints" / "m-1.pt").exists()


def test_paths_of_a_moved_run_folder_are_re_based_into_the_new_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    options = {"filename": "m-{epoch}", "monitor": "val_loss", "save_top_k": 1}
    fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), ModelCheckpoint(**options)], epochs=1,
        save_dir=old)
    old.rename(new)  # the run folder was moved; the stored paths still name the old place
    checkpoint = ModelCheckpoint(**options)
    fit([ScriptedMetrics({"val_loss": [3, 2, 1]}), checkpoint], epochs=2, save_dir=new,
        resume=new / "checkpoints" / "m-0.pt")
    # m-0.pt, re-based into the new folder, was pushed out of the top 1 by m-1.pt
    assert sorted(p.name for p in (new / "checkpoints").iterdir()) == ["m-1.pt"]
    assert checkpoint.best_model_path == str(new / "checkpoints" / "m-1.pt")

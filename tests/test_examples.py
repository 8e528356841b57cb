"""Run every script in examples/ (the callback guides' twins) and check what it prints or writes.

Each example runs once, in its own process with a timeout, in a temporary folder that it also
gets as its output folder. A fresh interpreter pays ~3.5 s of CPU before an example does
anything (torch, torch._dynamo on the first optimizer, scikit-learn), more than most examples
then need, so on POSIX one helper process (this file run as a script) imports those once and
forks a child per example, a few at a time; the child runs the script as ``__main__`` exactly as
``python examples/<name>.py OUTPUT_DIR`` would. Without ``os.fork`` (or with
``HOOKLINE_EXAMPLES_FRESH=1``) each example gets a fresh ``python`` instead.
"""

from __future__ import annotations

import ast
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
TIMEOUT_S = 90  # per example
WORKERS = 3  # examples at once: on two cores a third hides the others' I/O and start-up
FORK = hasattr(os, "fork") and os.environ.get("HOOKLINE_EXAMPLES_FRESH") != "1"
# examples that show an integration instead of twinning a seed page
EXTRAS = {"optuna_search", "any_model_hf_text", "any_model_vae_digits", "any_model_two_inputs",
          "gan_digits"}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def lines(self) -> list[str]:
        """The non-blank lines of stdout, stripped."""
        return [line.strip() for line in self.stdout.splitlines() if line.strip()]


def _environment() -> dict[str, str]:
    # one thread each: the examples run side by side, and forked children must not inherit
    # an OpenMP pool
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                         os.environ.get("PYTHONPATH")])))


def _fresh_run(script: Path, base: Path) -> Run:
    out = base / script.stem
    try:
        done = subprocess.run([sys.executable, str(script), str(out)], cwd=base,
                              env=_environment(), capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        return Run(-1, str(error.stdout or ""), f"timed out after {TIMEOUT_S}s", out)
    return Run(done.returncode, done.stdout, done.stderr, out)


def _forked_runs(base: Path) -> dict[str, Run]:
    budget = TIMEOUT_S * (len(SCRIPTS) // WORKERS + 2)
    subprocess.run([sys.executable, __file__, str(base), *map(str, SCRIPTS)], cwd=base,
                   env=_environment(), check=True, timeout=budget)
    codes = json.loads((base / "returncodes.json").read_text())
    return {script.stem: Run(codes[script.stem],
                             (base / f"{script.stem}.stdout").read_text(),
                             (base / f"{script.stem}.stderr").read_text(),
                             base / script.stem) for script in SCRIPTS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("examples")
    if FORK:
        return _forked_runs(base)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = pool.map(lambda script: _fresh_run(script, base), SCRIPTS)
        return {script.stem: result for script, result in zip(SCRIPTS, results)}


# --- the helper process: `python tests/test_examples.py BASE SCRIPT...` ------------------------

def _child(script: Path, base: Path) -> None:
    """In a forked child: run ``script`` as __main__ with its output captured, then exit."""
    import runpy
    import traceback
    code = 0
    try:
        for stream, name in ((1, "stdout"), (2, "stderr")):
            handle = os.open(base / f"{script.stem}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(handle, stream)
            os.close(handle)
        sys.argv = [str(script), str(base / script.stem)]
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as a failed example
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve(base: Path, scripts: list[Path]) -> None:
    """Import what every example imports, then run each in a forked child, WORKERS at once."""
    import sklearn.datasets  # noqa: F401
    import torch
    import torch._dynamo  # what the first optimizer would import

    import hookline
    import hookline.keras  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # warm the optimizer path
    pending, running, codes = list(scripts), {}, {}
    while pending or running:
        while pending and len(running) < WORKERS:
            script = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(script, base)
            running[pid] = (script, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            script, _ = running.pop(pid)
            codes[script.stem] = os.waitstatus_to_exitcode(status)
            continue
        for pid, (script, started) in list(running.items()):
            if time.monotonic() - started > TIMEOUT_S:
                os.kill(pid, 9)
                with open(base / f"{script.stem}.stderr", "a") as file:
                    file.write(f"\ntimed out after {TIMEOUT_S}s\n")
        time.sleep(0.02)
    (base / "returncodes.json").write_text(json.dumps(codes))


CHECKS: dict[str, Callable[[Run], None]] = {}


def check(name: str) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    def register(fn: Callable[[Run], None]) -> Callable[[Run], None]:
        CHECKS[name] = fn
        return fn
    return register


@pytest.mark.parametrize("name", [script.stem for script in SCRIPTS])
def test_example_runs_and_does_what_its_seed_shows(name: str, runs: dict[str, Run]) -> None:
    run = runs[name]
    assert run.returncode == 0, f"{name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert "Traceback" not in run.stderr, run.stderr
    assert "failed at" not in run.stderr, f"a callback failed in {name}:\n{run.stderr}"
    assert name in CHECKS, f"examples/{name}.py has no check in tests/test_examples.py"
    CHECKS[name](run)


def test_every_example_is_listed_and_names_its_seed() -> None:
    assert len(SCRIPTS) >= 12
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f"`{script.name}`" in readme, f"{script.name} is missing from examples/README.md"
        if script.stem in EXTRAS:
            continue
        docstring = ast.get_docstring(ast.parse(script.read_text()))
        assert docstring and re.search(r"^Source: the (Keras guide|Ultralytics) ", docstring,
                                       re.MULTILINE), (
            f"{script.name}'s docstring must name the page it twins on a 'Source:' line")


# --- the Keras guide (seed 004) ------------------------------------------------------------

@check("keras_custom_callback")
def _custom_callback(run: Run) -> None:
    # The seed's output, with the batch counts of 1000 digits: fit on 500 (4 batches of 128)
    # validating on 500 (4), evaluate on the other 797 (7), predict on them (7).
    metrics = "['loss', 'mean_absolute_error']"
    expected = ["Starting training; got log keys: []",
                "Start epoch 0 of training; got log keys: []"]
    for batch in range(4):
        expected += [f"...Training: start of batch {batch}; got log keys: []",
                     f"...Training: end of batch {batch}; got log keys: {metrics}"]

    def testing(batches: int) -> list[str]:
        lines = ["Start testing; got log keys: []"]
        for batch in range(batches):
            lines += [f"...Evaluating: start of batch {batch}; got log keys: []",
                      f"...Evaluating: end of batch {batch}; got log keys: {metrics}"]
        return lines + [f"Stop testing; got log keys: {metrics}"]

    epoch_keys = "['loss', 'mean_absolute_error', 'val_loss', 'val_mean_absolute_error']"
    expected += testing(4)
    expected += [f"End epoch 0 of training; got log keys: {epoch_keys}",
                 f"Stop training; got log keys: {epoch_keys}"]
    expected += testing(7)
    expected += ["Start predicting; got log keys: []"]
    for batch in range(7):
        expected += [f"...Predicting: start of batch {batch}; got log keys: []",
                     f"...Predicting: end of batch {batch}; got log keys: ['outputs']"]
    expected += ["Stop predicting; got log keys: []", "predictions: (797, 1)"]
    assert run.lines == expected


_UP_TO = re.compile(r"Up to batch (\d+), the average loss is +([\d.]+)\.")
_EPOCH_LOSS = re.compile(r"The average loss for epoch (\d+) is +([\d.]+) and mean absolute "
                         r"error is +([\d.]+)\.")


def _loss_lines(run: Run) -> list[tuple[str, re.Match[str]]]:
    """("batch" | "epoch", match) for each loss line, in order."""
    found = []
    for line in run.lines:
        if match := _UP_TO.fullmatch(line):
            found.append(("batch", match))
        elif match := _EPOCH_LOSS.fullmatch(line):
            found.append(("epoch", match))
    return found


@check("keras_loss_and_error_printing")
def _loss_and_error(run: Run) -> None:
    found = _loss_lines(run)
    kinds = [kind for kind, _ in found]
    assert kinds == ["batch"] * 8 + ["epoch"] + ["batch"] * 8 + ["epoch"] + ["batch"] * 7
    batches = [int(match[1]) for kind, match in found if kind == "batch"]
    assert batches == list(range(8)) * 2 + list(range(7))
    # logs["loss"] at a batch end is the running mean: the epoch's value equals the last one's
    for position, (kind, match) in enumerate(found):
        if kind == "epoch":
            assert match[2] == found[position - 1][1][2]
    epoch_losses = [float(match[2]) for kind, match in found if kind == "epoch"]
    assert epoch_losses[1] < epoch_losses[0]
    evaluated = re.search(r"evaluate returned \[loss, mean_absolute_error\]: \[([\d.]+), ",
                          run.stdout)
    assert evaluated, run.stdout
    assert float(evaluated[1]) == pytest.approx(float(found[-1][1][2]), abs=0.0051)


@check("keras_early_stopping_at_min_loss")
def _early_stopping(run: Run) -> None:
    losses = [float(match[2]) for kind, match in _loss_lines(run) if kind == "epoch"]
    stopped = re.search(r"^Epoch (\d{5}): early stopping$", run.stdout, re.MULTILINE)
    assert stopped, run.stdout
    epochs = int(stopped[1])
    assert epochs == len(losses) < 30
    assert losses[-1] >= min(losses[:-1]), "it stopped although the loss still fell"
    assert all(later < earlier for earlier, later in itertools.pairwise(losses[:-1]))
    restoring = run.lines.index("Restoring model weights from the end of the best epoch.")
    assert restoring < run.lines.index(stopped[0])
    assert f"epochs run: {epochs} of 30;" in run.stdout
    assert "best weights restored: True" in run.stdout
    best = float(re.search(r"best loss: ([\d.]+);", run.stdout)[1])
    assert best == pytest.approx(min(losses), abs=0.0051)  # printed with 4 and 2 decimals


@check("keras_learning_rate_scheduler")
def _learning_rate_scheduler(run: Run) -> None:
    rates = re.findall(r"^Epoch (\d{5}): Learning rate is ([\d.]+)\.$", run.stdout, re.MULTILINE)
    schedule = {0: 0.1, 3: 0.05, 6: 0.01, 9: 0.005, 12: 0.001}
    expected, rate = [], 0.1
    for epoch in range(15):
        rate = schedule.get(epoch, rate)
        expected.append((f"{epoch:05d}", f"{rate:6.4f}"))
    assert rates == expected
    assert len([kind for kind, _ in _loss_lines(run) if kind == "epoch"]) == 15
    assert "the torch optimizer's final learning rate: 0.0010" in run.stdout


# --- the Ultralytics pages (seeds 000-003) ---------------------------------------------------

@check("ultralytics_class_callback")
def _class_callback(run: Run) -> None:
    lines = run.lines
    assert lines[0].startswith("Training started")
    losses = []
    for epoch in range(1, 4):
        at = lines.index(f"Epoch {epoch} finished.")
        match = re.fullmatch(r"Validation loss: ([\d.]+)", lines[at + 1])
        assert match, lines[at + 1]
        losses.append(match[1])
    assert lines.index("Training finished.") > lines.index("Epoch 3 finished.")
    final = ast.literal_eval(lines[-1].removeprefix("final metrics: "))
    assert f"{final['val_loss']:.4f}" == losses[-1]
    assert "An error occurred" not in run.stdout


@check("ultralytics_epoch_end_fitness")
def _epoch_end_fitness(run: Run) -> None:
    found = re.findall(r"^Epoch (\d) complete\. Current Fitness: (\S+)$", run.stdout, re.MULTILINE)
    assert [epoch for epoch, _ in found] == ["1", "2", "3"]
    val_accuracy = ast.literal_eval(run.stdout.split("val_accuracy per epoch: ")[1].strip())
    # on_train_epoch_end fires before validation: the fitness is the previous epoch's
    assert found[0][1] == "None"
    assert [float(value) for _, value in found[1:]] == pytest.approx(val_accuracy[:2])


@check("ultralytics_model_save_metrics")
def _model_save_metrics(run: Run) -> None:
    from hookline.checkpoint import load_weights

    blocks = re.findall(r"^Model details\nBest fitness: (\S+), Loss names: (\[.*?\]), "
                        r"Metrics: (\{.*?\}), Total loss: (\S+)$", run.stdout, re.MULTILINE)
    assert len(blocks) == 3, run.stdout
    best_so_far = 0.0
    for best, loss_names, metrics, total_loss in blocks:
        metrics = ast.literal_eval(metrics)
        assert ast.literal_eval(loss_names) == ["loss"]
        assert {"loss", "val_loss", "val_accuracy"} <= set(metrics)
        best_so_far = max(best_so_far, metrics["val_accuracy"])
        assert float(best) == pytest.approx(best_so_far)
        assert float(total_loss) == pytest.approx(metrics["loss"], rel=1e-6)
    last = load_weights(run.out / "weights" / "last.pt")
    best = load_weights(run.out / "weights" / "best.pt")
    assert last["epoch"] == 2 and set(last["model"]) == {"0.weight", "0.bias", "2.weight",
                                                         "2.bias"}
    assert best["fitness"] == pytest.approx(best_so_far)


@check("ultralytics_predict_frames")
def _predict_frames(run: Run) -> None:
    assert "(result, frame) pairs: 297; frames matching their result's input: 297" in run.stdout
    assert re.search(r"last pair: Result\(index=296, output=\(10,\)\) class \d with a frame of "
                     r"shape \(1, 8, 8\)", run.stdout)
    assert "model.predict with the callback registered: (297, 10)" in run.stdout


@check("ultralytics_freeze_batchnorm")
def _freeze_batchnorm(run: Run) -> None:
    assert run.lines == [
        "without the callback:",
        "0.bn (frozen): running stats changed",
        "1.bn (frozen): running stats changed",
        "2.bn (trained): running stats changed",
        "with put_in_eval_mode:",
        "0.bn (frozen): running stats unchanged",
        "1.bn (frozen): running stats unchanged",
        "2.bn (trained): running stats changed",
    ]


@check("ultralytics_plot_val_batches")
def _plot_val_batches(run: Run) -> None:
    pngs = sorted(run.out.glob("*.png"))
    expected = [f"val_batch{i}.png" for i in range(7)]  # 397 validation digits, 64 per batch
    assert sorted(path.name for path in pngs) == sorted(expected)
    for path in pngs:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert width > 100 and height > 50
    assert re.search(r"validated 397 samples in batches of 64: val accuracy 0\.\d+", run.stdout)


@check("ultralytics_save_on_class")
def _save_on_class(run: Run) -> None:
    summary = re.search(r"class 2: (\d+) of (\d+) batches hold it: (\[.*\])", run.stdout)
    assert summary, run.stdout
    holding, total = ast.literal_eval(summary[3]), int(summary[2])
    assert total == 25 and 0 < len(holding) < total, "the toggle must keep some batches out"
    with open(run.out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    saved: dict[int, list[int]] = {}
    for row in rows:
        saved.setdefault(int(row["index"]) // 8, []).append(int(row["cls"]))
    assert sorted(saved) == holding
    for batch, classes in saved.items():
        assert 2 in classes
        assert len(classes) == min(8, 200 - 8 * batch), "a saved batch is saved whole"


@check("detection_save_on_object")
def _detection_save_on_object(run: Run) -> None:
    summary = re.search(r"class 2 \(triangle\): (\d+) of (\d+) frames hold it: (\[.*\])",
                        run.stdout)
    assert summary, run.stdout
    holding, total = ast.literal_eval(summary[3]), int(summary[2])
    assert total == 60 and 0 < len(holding) < total, "the toggle must keep some frames out"
    truly = int(re.search(r"truly holding a triangle among them: (\d+)", run.stdout)[1])
    assert truly >= 0.8 * len(holding), "the detector finds real triangles"
    with open(run.out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["index", "cls", "conf", "x1", "y1", "x2", "y2"]
    saved: dict[int, list[int]] = {}
    for row in rows:
        saved.setdefault(int(row["index"]), []).append(int(row["cls"]))
        assert float(row["x1"]) < float(row["x2"]) and float(row["y1"]) < float(row["y2"])
    assert sorted(saved) == holding, "exactly the frames whose boxes hold class 2 are saved"
    assert all(2 in classes for classes in saved.values())


@check("detection_predict_frames")
def _detection_predict_frames(run: Run) -> None:
    assert "(result, frame) pairs: 100; frames matching their result's input: 100" in run.stdout
    found = re.search(r"boxes found: (\d+); frames whose boxes name exactly the shapes drawn: "
                      r"(\d+)", run.stdout)
    assert found, run.stdout
    assert int(found[1]) > 100 and int(found[2]) >= 80
    assert re.search(r"last pair: Result\(index=99, boxes=\d\) with a frame of shape "
                     r"\(3, 32, 32\); first box xyxy \[", run.stdout)


@check("ultralytics_callbacks_list")
def _callbacks_list(run: Run) -> None:
    import torch

    epochs = re.findall(r"^epoch (\d)/6: loss ([\d.]+), val_accuracy ([\d.]+)$", run.stdout,
                        re.MULTILINE)
    assert [int(epoch) for epoch, _, _ in epochs] == list(range(1, 7))
    accuracies = [float(value) for _, _, value in epochs]
    saves = re.findall(r"saved the best weights so far \(fitness ([\d.]+)\)", run.stdout)
    new_bests = [value for i, value in enumerate(accuracies) if value > max(accuracies[:i],
                                                                             default=-1)]
    assert [float(value) for value in saves] == new_bests
    best = torch.load(run.out / "best.pt", weights_only=True)
    assert best["fitness"] == pytest.approx(max(accuracies), abs=1e-4)
    with open(run.out / "results.csv", newline="") as file:
        report = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in report] == list(range(1, 7))
    assert [float(row["val_accuracy"]) for row in report] == pytest.approx(accuracies, abs=1e-4)
    closed = run.lines.index(f"report closed: {run.out / 'results.csv'}")
    assert closed > max(i for i, line in enumerate(run.lines) if line.startswith("epoch 6/6"))
    assert "caches cleared 6 times" in run.stdout


# --- integrations ------------------------------------------------------------------------------

@check("optuna_search")
def _optuna_search(run: Run) -> None:
    summary = re.search(r"^trials: 8, complete: (\d+), pruned: (\d+)$", run.stdout, re.MULTILINE)
    assert summary, run.stdout
    complete, pruned = int(summary[1]), int(summary[2])
    assert complete + pruned == 8 and complete >= 2 and pruned >= 1, run.stdout
    stops = re.findall(r"^trial \d+: pruned after (\d+) of 8 epochs \(val_loss [\d.]+\)$",
                       run.stdout, re.MULTILINE)
    assert len(stops) == pruned and all(1 <= int(epochs) < 8 for epochs in stops)
    finished = re.findall(r"^trial \d+: val_loss ([\d.]+), val_accuracy ([\d.]+) after 8 "
                          r"epochs$", run.stdout, re.MULTILINE)
    assert len(finished) == complete
    best = re.search(r"^best trial \d+: val_loss ([\d.]+) with lr=[\d.e+-]+, hidden=\d+, "
                     r"dropout=[\d.e+-]+$", run.stdout, re.MULTILINE)
    assert best, run.stdout
    assert float(best[1]) == min(float(loss) for loss, _ in finished)
    assert max(float(accuracy) for _, accuracy in finished) > 0.9


# --- any model ---------------------------------------------------------------------------------

def _epoch_values(run: Run, name: str) -> list[float]:
    return [float(value) for value in re.findall(rf"\b{re.escape(name)} ([\d.]+)", run.stdout)]


@check("any_model_hf_text")
def _hf_text(run: Run) -> None:
    losses, accuracies = _epoch_values(run, "loss"), _epoch_values(run, "val_accuracy")
    assert len(losses) == 4, run.stdout
    assert losses[-1] < 0.6 * losses[0]  # the model's own loss goes down
    assert max(accuracies) > 0.85


@check("any_model_vae_digits")
def _vae_digits(run: Run) -> None:
    assert "loss_names ['recon', 'kl']" in run.stdout
    with open(run.out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8
    assert {"loss", "train/recon", "train/kl", "val/recon", "val/kl"} <= set(rows[0])
    for row in rows:  # the total is the sum of the parts
        assert float(row["loss"]) == pytest.approx(
            float(row["train/recon"]) + float(row["train/kl"]), rel=1e-5)
    assert float(rows[-1]["train/recon"]) < float(rows[0]["train/recon"])
    assert (run.out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@check("any_model_two_inputs")
def _two_inputs(run: Run) -> None:
    losses = _epoch_values(run, "loss")
    plain, weighted = _epoch_values(run, "val_accuracy"), _epoch_values(
        run, "val_weighted_accuracy")
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert plain[-1] > 0.6 and weighted[-1] != plain[-1]
    assert "predictions (360, 10)" in run.stdout



@check("gan_digits")
def _gan_digits(run: Run) -> None:
    assert "optimizer steps 368, loss_names ['discriminator', 'generator']" in run.stdout
    epochs = re.findall(r"^epoch \d+: d_loss ([\d.]+) g_loss ([\d.]+) D\(real\) ([\d.]+) "
                        r"D\(fake\) ([\d.]+)$", run.stdout, re.MULTILINE)
    assert len(epochs) == 8, run.stdout
    # an adversarial game, not a collapse: neither side wins outright
    assert all(0.05 < float(real) < 0.95 and 0.05 < float(fake) < 0.95
               for _, _, real, fake in epochs)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), [Path(arg) for arg in sys.argv[2:]])

"""Run every code block of the porting guides (docs/from-keras.md, from-lightning.md,
from-ultralytics.md) and check that the names their tables give for hookline exist.

Each guide's ```python blocks are joined in order into one script, which runs in a fresh
interpreter (cwd: a temporary folder, with a timeout), so a later block may use what an earlier
one defined, as a reader pasting them in turn would. A block that is deliberately not runnable
(the peer's own code, an excerpt) is marked by the line ``<!-- fragment -->`` right before its
opening fence; it is left out, and every other ```python block runs. The guides' blocks use only
data made in code or scikit-learn's bundled digits, so they need no network.

The tables' hookline column (the second column of every table whose header names "hookline"
there) is checked name by name: an ``on_*`` name must be an event or a Keras alias
(``hookline.EVENT_NAMES``, ``hookline.events.ALIASES``), a ``Name`` must be importable from
hookline, an ``option=`` must be a parameter of the Trainer, the Keras door or a built-in
callback, and ``trainer.attr`` an attribute of a Trainer.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hookline
from hookline import callbacks, keras, loggers
from hookline.events import ALIASES, EVENT_NAMES, PORTED_NAMES

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "docs" / f"from-{peer}.md" for peer in ("keras", "lightning", "ultralytics")]
TIMEOUT_S = 180  # per guide: its blocks train a few small models for a few epochs
FRAGMENT = "<!-- fragment -->"
_FENCE = re.compile(r"^```(\w*)\s*$")


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, is_fragment)`` for each ```python block, in order."""
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening or not opening[1]:
            index += 1
            continue
        start, body = index, []
        index += 1
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if opening[1] == "python":
            before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
            blocks.append((start + 1, "\n".join(body), before == FRAGMENT))
    return blocks


def script_of(guide: Path) -> str:
    """The guide's runnable blocks as one script, each headed by where it comes from."""
    parts = [f"# --- {guide.name}, line {line}\n{code}\n"
             for line, code, fragment in python_blocks(guide.read_text()) if not fragment]
    return "\n".join(parts)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.stem)
def test_every_python_block_of_the_guide_runs(guide: Path, tmp_path: Path) -> None:
    blocks = python_blocks(guide.read_text())
    runnable = [block for block in blocks if not block[2]]
    assert runnable, f"{guide.name} has no runnable ```python block"
    script = tmp_path / f"{guide.stem}.py"
    script.write_text(script_of(guide))
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH")])))
    run_dir = tmp_path / "cwd"
    run_dir.mkdir()
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=run_dir, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{guide.name}'s blocks ran past {TIMEOUT_S}s")
    assert done.returncode == 0, (f"{guide.name}'s blocks failed (the script's comments say "
                                  f"which guide line each part comes from):\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    assert "Traceback" not in done.stderr, done.stderr


def test_a_fragment_marker_skips_only_the_block_after_it() -> None:
    text = ("intro\n\n```python\nprint(1)\n```\n\n<!-- fragment -->\n```python\n"
            "import keras\n```\n\n```bash\nls\n```\n```python\nprint(2)\n```\n")
    found = [(code, fragment) for _, code, fragment in python_blocks(text)]
    assert found == [("print(1)", False), ("import keras", True), ("print(2)", False)]


# --- the names in the tables ---------------------------------------------------------------

def hookline_cells(text: str) -> list[tuple[int, str]]:
    """``(line, cell)`` for the hookline column of every table whose header names it."""
    cells, column = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            column = None
            continue
        row = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if column is None:
            column = next((i for i, cell in enumerate(row) if cell.startswith("hookline")), -1)
            continue
        if column < 0 or set(line) <= set("|-: "):
            continue
        if column < len(row):
            cells.append((number, row[column]))
    return cells


def _parameters() -> set[str]:
    names: set[str] = set()
    functions = [hookline.Trainer.__init__, hookline.Model.__init__, hookline.Model.fit,
                 hookline.Model.evaluate, hookline.Model.predict, hookline.Model.export,
                 hookline.Predictor.__init__, hookline.Exporter.__init__,
                 hookline.Trainer.add_callback]
    functions += [getattr(callbacks, name).__init__ for name in callbacks.__all__
                  if isinstance(getattr(callbacks, name), type)]
    functions += [getattr(loggers, name).__init__ for name in loggers.__all__
                  if name != "OptunaPruning"]
    functions += [getattr(callbacks, name) for name in ("warmup_cosine", "one_cycle")]
    for function in functions:
        names.update(inspect.signature(function).parameters)
    return names


def _trainer_attributes() -> set[str]:
    import torch
    trainer = hookline.Trainer(torch.nn.Linear(2, 2), loss="mse",
                               train_data=(torch.zeros(4, 2), torch.zeros(4, 2)), verbose=0)
    return set(dir(trainer)) | set(vars(trainer))


def _importable(name: str) -> bool:
    """``hookline.x.y``, or ``Name`` / ``Name.attr`` from hookline, its callbacks, loggers or
    Keras door (what follows a ``(`` is not checked)."""
    parts = name.split("(")[0].split(".")
    if parts[0] == "hookline":
        target: object = hookline
        parts = parts[1:]
    else:
        spaces = [space for space in (hookline, callbacks, keras) if hasattr(space, parts[0])]
        if not spaces and parts[0] not in loggers.__all__:
            return False
        target = getattr(spaces[0] if spaces else loggers, parts[0])
        parts = parts[1:]
    for part in parts:
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def name_problems(guide: Path) -> list[str]:
    """Each backticked name of the hookline column that does not exist in hookline."""
    problems = []
    parameters, attributes = _parameters(), _trainer_attributes()
    events = EVENT_NAMES | set(ALIASES)
    for line, cell in hookline_cells(guide.read_text()):
        for name in re.findall(r"`([^`]+)`", cell):
            where = f"{guide.name}:{line}: `{name}`"
            if re.fullmatch(r"on_\w+|teardown|optimizer_step", name):
                if name not in events:
                    problems.append(f"{where} is not a hookline event")
            elif match := re.match(r"(\w+)=", name):
                if match[1] not in parameters:
                    problems.append(f"{where}: no Trainer, Model or callback option "
                                    f"{match[1]!r}")
            elif match := re.match(r"trainer\.(\w+)", name):
                if match[1] not in attributes:
                    problems.append(f"{where}: a Trainer has no attribute {match[1]!r}")
            elif (re.match(r"[A-Z]\w*", name) or name.startswith("hookline.")) and \
                    not _importable(name):
                problems.append(f"{where} is not importable from hookline")
    return problems


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.stem)
def test_every_hookline_name_in_the_tables_exists(guide: Path) -> None:
    assert hookline_cells(guide.read_text()), f"{guide.name} has no table with a hookline column"
    assert name_problems(guide) == []


def lightning_rows(text: str) -> list[tuple[set[str], set[str]]]:
    """``(Lightning names, hookline events)`` of each row of the guide's tables."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:
            rows.append((set(re.findall(r"`(\w+)`", cells[0])),
                         set(re.findall(r"`(\w+)`", cells[1]))))
    return rows


def test_the_lightning_guide_gives_every_ported_name_its_event() -> None:
    rows = lightning_rows((ROOT / "docs" / "from-lightning.md").read_text())
    named = set().union(*(names for names, _ in rows))
    assert set(PORTED_NAMES) - named == set(), "Lightning names missing from the guide"
    for names, events in rows:
        for name in names & set(PORTED_NAMES):
            assert set(PORTED_NAMES[name].events) <= events, (name, events)


def test_the_name_check_catches_a_wrong_name(tmp_path: Path) -> None:
    guide = tmp_path / "from-x.md"
    guide.write_text("| x | hookline | note |\n|---|---|---|\n"
                     "| a | `on_validation_end` | |\n| b | `EarlyStoping` | |\n"
                     "| c | `patients=` | |\n| d | `trainer.fitnes` | |\n"
                     "| e | `on_val_end`, `EarlyStopping(patience=)`, `trainer.fitness` | |\n")
    problems = name_problems(guide)
    assert len(problems) == 4, problems
    for wrong in ("on_validation_end", "EarlyStoping", "patients", "fitnes"):
        assert any(wrong in problem for problem in problems), (wrong, problems)


def test_the_guides_are_listed_where_readers_look() -> None:
    readme = (ROOT / "README.md").read_text()
    for guide in GUIDES:
        assert f"(docs/{guide.name})" in readme, f"README.md does not link docs/{guide.name}"

"""Every code block of README.md and docs/*.md runs as pasted, unless it is marked.

The marker convention (an HTML comment on the line right before the opening fence: invisible
on GitHub and on the docs site, so a reader sees plain code):

- ```` ```python ```` and ```` ```bash ```` blocks are programs and are run, in page order, in
  one temporary folder per page (a later block sees the files an earlier one wrote): each
  python block in a fresh interpreter, each bash block with ``bash -euo pipefail``, with this
  interpreter's bin folder first on PATH so ``hookline`` is the installed command.
- ``<!-- fragment -->``: a piece of a larger program (it uses names defined elsewhere); not run.
- ``<!-- not run: REASON -->``: a complete block the test leaves alone, with the reason (it
  installs the environment, or starts processes that other tests exercise).
- ``<!-- file: NAME -->``: the block is a file the following blocks use (a model module, a
  YAML config); it is written to NAME in the page's folder when reached, not run itself.
- Blocks in other languages are not programs: ``yaml`` blocks must parse, ``text`` and
  unlabelled blocks (diagrams, output) are left alone.

A failing block is reported with its page, line and output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the porting guides' blocks build one program per guide: tests/test_porting_guides.py runs them
PAGES = [ROOT / "README.md", *sorted(page for page in (ROOT / "docs").glob("*.md")
                                     if not page.name.startswith("from-"))]
RUN = {"python", "bash"}
MARKER = re.compile(r"<!--\s*(fragment|not run:\s*\S.*|file:\s*\S+)\s*-->\s*$")
TIMEOUT_S = 300


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the marker on the line before it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(`{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith(fence))
        previous = lines[index - 1].strip() if index else ""
        marker = MARKER.match(previous)
        found.append(Block(page, index + 1, language, "\n".join(lines[index + 1:end]) + "\n",
                           marker.group(1) if marker else None))
        index = end + 1
    return found


def _environment() -> dict[str, str]:
    bin_folder = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=os.pathsep.join([bin_folder, os.environ.get("PATH", "")]),
                MPLBACKEND="Agg", WANDB_MODE="offline", WANDB_SILENT="true",
                OMP_NUM_THREADS="1")


def _run(block: Block, folder: Path) -> None:
    command = [sys.executable, "-c", block.text] if block.language == "python" else \
        ["bash", "-euo", "pipefail", "-c", block.text]
    try:
        done = subprocess.run(command, cwd=folder, env=_environment(), capture_output=True,
                              text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where} ran past {TIMEOUT_S} s:\n{block.text}")
    if done.returncode != 0:
        pytest.fail(f"{block.where} failed (exit {done.returncode}):\n{block.text}\n"
                    f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


def _run_page(page: Path, folder: Path) -> None:
    for block in blocks(page):
        marker = block.marker or ""
        if marker.startswith("file:"):
            (folder / marker.split(":", 1)[1].strip()).write_text(block.text)
        elif block.language == "yaml" and not marker:
            import yaml
            yaml.safe_load(block.text)
        elif block.language in RUN and not marker:
            _run(block, folder)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_code_block_runs_as_pasted_or_is_marked(page: Path, tmp_path: Path) -> None:
    """One test per page, so pytest-xdist runs pages side by side on its workers; a page's
    blocks run in order in the page's own folder."""
    _run_page(page, tmp_path)


def test_the_marker_convention_is_used_as_documented() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.marker and not block.marker.startswith("file:"):
                assert block.language in RUN, (
                    f"{block.where}: only python/bash blocks need a fragment/not-run marker")
            assert block.language in RUN | {"yaml", "text", ""}, (
                f"{block.where}: fence language {block.language!r}; use python, bash, yaml or "
                f"text so the test knows whether it is a program")


def test_the_readme_keeps_its_two_set_up_commands_and_runs_its_headline_example() -> None:
    readme = blocks(ROOT / "README.md")
    assert "bash scripts/demo.sh" in readme[0].text and "bash scripts/test.sh" in readme[0].text
    run = [block for block in readme if block.language in RUN and not block.marker]
    assert len(run) >= 4  # the three doors and a callback run, not only shell lines
    headline = run[0].text
    # the fitness of an epoch is known once validation ran: on_fit_epoch_end, not the
    # train-epoch end that fires before validation
    assert "on_fit_epoch_end" in headline and "on_train_epoch_end" not in headline


LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", [*PAGES, ROOT / "examples" / "README.md",
                                  *sorted((ROOT / "examples").glob("*.py"))],
                         ids=lambda page: page.name)
def test_docs_cite_only_files_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "shared/" not in text, f"{page.name} cites shared/, which is not in the repository"
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repo: {target}"
        assert resolved.exists(), f"{page.name} links to {target}, which does not exist"

"""The docs site builds with ``mkdocs build --strict`` offline, and its API reference holds
every public name: ``hookline.__all__`` and the ``__all__`` of each public submodule."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = ["hookline", "hookline.callback", "hookline.callback_list",
                  "hookline.callbacks", "hookline.loggers", "hookline.events", "hookline.engine",
                  "hookline.keras", "hookline.checkpoint", "hookline.resume", "hookline.data",
                  "hookline.metrics", "hookline.distributed", "hookline.rng", "hookline.testing",
                  "hookline.demo", "hookline.cli"]
BUILD_LIMIT_S = 60


def _inventory(site: Path) -> set[str]:
    """The object names of a Sphinx-format ``objects.inv`` (four header lines, then zlib)."""
    data = (site / "objects.inv").read_bytes()
    body = zlib.decompress(data.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    # any attempt to reach the network goes to a closed port and fails the build
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", NO_PROXY="", no_proxy="")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(folder)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return folder, seconds


def test_the_site_builds_strictly_within_the_limit(site):
    folder, seconds = site
    assert seconds < BUILD_LIMIT_S, f"the docs build took {seconds:.0f} s"
    for page in ("index.html", "cli/index.html", "events/index.html", "callbacks/index.html",
                 "integrations/index.html", "reliability/index.html", "api/hookline/index.html"):
        assert (folder / page).is_file(), page
    events = (folder / "events" / "index.html").read_text()
    assert "on_fit_epoch_end" in events and "on_train_epoch_end" in events


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_the_api_reference_documents_every_public_name(module, site):
    names = _inventory(site[0])
    missing = [name for name in importlib.import_module(module).__all__
               if f"{module}.{name}" not in names
               and not any(entry.startswith(f"{module}.") and entry.endswith(f".{name}")
                           for entry in names)]
    assert not missing, f"{module}: not in the API reference: {missing}"


def test_every_page_of_docs_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        relative = page.relative_to(ROOT / "docs").as_posix()
        assert f" {relative}" in config, f"docs/{relative} is not in mkdocs.yml's nav"

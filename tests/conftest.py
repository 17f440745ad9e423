"""Fixtures and hooks only: ../shared, a private Xvfb, one torch thread, a picks file per test, the robustness tally.
Helpers: tests/helpers.py."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# play remembers a cartridge's colour scheme in the user's config folder: never the tester's own
# (and each test gets its own file below, so one test's pick never starts another's game)
_PICKS_DIR = tempfile.mkdtemp(prefix="retrocolor-picks-")
atexit.register(shutil.rmtree, _PICKS_DIR, True)
os.environ["RETROCOLOR_PICKS"] = str(Path(_PICKS_DIR) / "picks.json")

from helpers import ROOT, shared_path  # noqa: E402


@pytest.fixture(scope="module")
def xvfb():
    """A private 1024x768 Xvfb display; yields the env for subprocesses that use it (skips without Xvfb)."""
    from realtime.emulators import start_xvfb
    from utils.errors import UserError

    try:
        xs = start_xvfb((1024, 768))
    except UserError as e:
        pytest.skip(str(e))
    env = dict(xs.env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    yield env
    xs.close()


@pytest.fixture(autouse=True)
def own_picks_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh file for ``play``'s remembered colour schemes in every test (subprocesses inherit it)."""
    monkeypatch.setenv("RETROCOLOR_PICKS", str(tmp_path_factory.mktemp("picks") / "picks.json"))


@pytest.fixture
def shared() -> Path:
    """The ../shared folder; tests using it are skipped where it is absent."""
    return shared_path()


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test: two OpenMP threads on a shared 2-core runner
    spin against each other (~50x slower)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------- robustness group (appended)
def pytest_configure(config: pytest.Config) -> None:
    """Register the ``robustness`` marker (tests/test_robustness_*.py: faults, hostile inputs, fuzz)."""
    config.addinivalue_line("markers", "robustness: fault injection, hostile inputs and fuzzing (tests/robustness.py)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the robustness tally (faults injected / survived / data lost, bad inputs / crashes)."""
    import sys

    mod = sys.modules.get("robustness")
    if mod is None or not mod.TALLY:
        return
    terminalreporter.section("robustness")
    for line in mod.summary_lines():
        terminalreporter.write_line(line)
    if os.environ.get("RETROCOLOR_ROBUSTNESS_JSON"):
        mod.write_json(os.environ["RETROCOLOR_ROBUSTNESS_JSON"])

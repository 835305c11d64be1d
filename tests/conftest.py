"""Shared fixtures: paths, real data locations and a runner for the real `systrade` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
STRATEGIES = REPO / "strategies"


def shared_file(name: str) -> Path:
    """A file from ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real market data {path} is absent (it lives outside the repository)")
    return path


def systrade_exe() -> str:
    """The installed console script next to this Python (the real entry point)."""
    exe = Path(sys.executable).with_name("systrade")
    return str(exe) if exe.exists() else shutil.which("systrade") or "systrade"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory with a config that points at the bundled strategies."""
    (tmp_path / "systrade.toml").write_text(
        f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n[data]\ndir = "{(tmp_path / "data").as_posix()}"\n'
    )
    return tmp_path


@pytest.fixture
def run_cli(workdir: Path):
    """Run `systrade ARGS...` as a real subprocess in ``workdir``; returns CompletedProcess."""

    def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
        full_env.update({"COLUMNS": "200", **(env or {})})
        return subprocess.run([systrade_exe(), *args], cwd=cwd or workdir, env=full_env, capture_output=True,
                              text=True, timeout=300)

    return run


def tree(path: Path) -> set[str]:
    """Every file under ``path`` (to prove a failed command wrote nothing)."""
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}

"""Shared fixtures: paths, real data locations and a runner for the real `systrade` command."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

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


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process code may connect only to 127.0.0.1 (the subprocesses are pointed at the fakes by config)."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def loopback(host: Any) -> bool:
        try:
            return ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            return host == "localhost"

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not loopback(address[0]):
            raise OSError(f"test refused a connection to {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not loopback(host):
            raise OSError(f"test refused to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

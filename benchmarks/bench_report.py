"""What every benchmark script records next to its figures, and where: its own section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "BENCHMARKS.md"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def code_version() -> str:
    """The commit measured, and how many files under src/ differed from it (read-only git calls)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return f"commit {commit}" + (f" plus uncommitted changes in {len(changed)} file(s) under src/" if changed else "")


def machine(libraries: str = "") -> str:
    """CPU model, cores and Python version, plus ``libraries`` (versions that matter to the figures)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    text = f"{platform.platform()}, {model}, {os.cpu_count()} logical cores, Python {platform.python_version()}"
    return text + (f", {libraries}" if libraries else "")


def update_results(section: str, body: str) -> None:
    """Replace this script's section of BENCHMARKS.md (every other section is kept)."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\nFigures measured on this project's machine.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)

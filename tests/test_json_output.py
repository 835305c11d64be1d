"""One convention for machine-readable output: ``--json PATH`` writes a file, ``--json -`` standard output,
with the JSON alone there (tables, notes and progress go to standard error)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", [["backtest", "sma_cross"], ["check", "warmup", "sma_cross"],
                                     ["optimize", "sma_cross", "--grid", "fast=5,10", "--grid", "slow=30"],
                                     ["data", "list"]])
def test_json_to_standard_output_is_alone_there(run_cli, workdir: Path, command: list[str]) -> None:
    to_file = run_cli(*command, "--json", "out.json")
    to_stdout = run_cli(*command, "--json", "-")
    assert to_file.returncode == to_stdout.returncode == 0, to_file.stderr + to_stdout.stderr
    document = json.loads(to_stdout.stdout)  # nothing else on stdout, or this fails
    expected = json.loads((workdir / "out.json").read_text())
    assert type(document) is type(expected) and document.keys() == expected.keys() if isinstance(document, dict) \
        else len(document) == len(expected)
    assert not (workdir / "-").exists()
    assert to_file.stdout.strip() != ""  # the human output is still there when the JSON goes to a file

"""A strategy's own mistakes (an exception, a hang, declarations that contradict themselves) end the command
with exit 2 and one line naming the strategy file and the fix, never an internal error or a hang."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

HEADER = "from systrade import Param, Signals, Strategy, crossed_above, crossed_below\n\n\n"
GOOD_SIGNALS = """
    def signals(self, data):
        f = data["close"].rolling(5).mean()
        s = data["close"].rolling(20).mean()
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))
"""


def write(workdir: Path, body: str) -> Path:
    path = workdir / "mine.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def refused(result, *words: str) -> str:
    """Exit 2, one line on stderr holding ``words``, no traceback, nothing on stdout but progress."""
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:"), result.stderr  # after any progress bar
    for word in words:
        assert word in message, message
    return message


def test_an_exception_in_signals_names_the_file_and_line(run_cli, workdir: Path) -> None:
    path = write(workdir, '''
        class Broken(Strategy):
            """Divides by zero on purpose."""

            def signals(self, data):
                bars = len(data)
                return Signals(entries=data["close"] > bars // 0)
        ''')
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "bars // 0" in text)
    message = refused(run_cli("backtest", str(path)), "strategy broken", "ZeroDivisionError", str(path),
                      f"line {line}")
    assert "--debug" in message
    assert not (workdir / "data" / "paper.sqlite").exists()


@pytest.mark.parametrize("command", [["backtest"], ["optimize", "--grid", "n=1,2"], ["check", "lookahead"]])
def test_a_hanging_strategy_is_stopped_after_the_timeout(run_cli, workdir: Path, command: list[str]) -> None:
    path = write(workdir, '''
        class Hangs(Strategy):
            """Never returns."""
            n = Param(1, low=1, high=2, step=1)

            def signals(self, data):
                while True:
                    try:
                        pass
                    except Exception:  # a strategy's own broad except must not swallow the timeout
                        pass
        ''')
    refused(run_cli("--timeout", "1", *command[:2] if command[0] == "check" else command[:1], str(path),
                    *command[2 if command[0] == "check" else 1:]), "ran longer than 1 s", "--timeout")


@pytest.mark.parametrize("declaration, words", [
    ('    fast = Param(5, low=10, high=20)\n', ["Param fast", "below its low bound 10"]),
    ('    fast = Param(15, low=20, high=10)\n', ["Param fast", "low 20 above high 10"]),
    ('    kind = Param("ema", choices=["sma", "wma"])\n', ["Param kind", "'ema' is not allowed"]),
    ('    fast = Param(5, low=1, high=9, step=0)\n', ["Param fast", "step 0"]),
    ('    warmup = "lots"\n', ["warmup = 'lots'", "whole number"]),
    ('    direction = "sideways"\n', ["direction = 'sideways'", "long, short, both"]),
    ('    stop_loss = -0.05\n', ["stop_loss = -0.05", "positive fraction"]),
    ('    timeframe = "7x"\n', ["timeframe = '7x'"]),
])
def test_declarations_that_contradict_themselves_are_refused(run_cli, workdir: Path, declaration: str,
                                                             words: list[str]) -> None:
    path = workdir / "mine.py"
    path.write_text(HEADER + 'class Mine(Strategy):\n    """Mine."""\n' + declaration + textwrap.dedent(GOOD_SIGNALS)
                    .replace("\n", "\n    ").rstrip() + "\n")
    refused(run_cli("backtest", str(path), "--json", "out.json"), "strategy mine", str(path), *words)
    assert not (workdir / "out.json").exists()


def test_a_good_strategy_written_the_same_way_runs(run_cli, workdir: Path) -> None:
    """The fixtures above fail for the reason they name, not for how they are written."""
    path = workdir / "mine.py"
    path.write_text(HEADER + 'class Mine(Strategy):\n    """Mine."""\n    fast = Param(15, low=10, high=20)\n'
                    '    warmup = 20\n' + textwrap.dedent(GOOD_SIGNALS).replace("\n", "\n    ").rstrip() + "\n")
    result = run_cli("--timeout", "120", "backtest", str(path))
    assert result.returncode == 0, result.stderr


def test_a_bad_timeout_is_refused(run_cli) -> None:
    refused(run_cli("--timeout", "soon", "backtest", "sma_cross"), "--timeout 'soon'", "seconds")

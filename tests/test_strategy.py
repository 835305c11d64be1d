"""The strategy contract: Param, crossed_above/below, loading, and validation of signals()."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systrade import Param, Signals, Strategy, crossed_above, crossed_below
from systrade.errors import UserError
from systrade.strategy import discover, load_strategy, parse_param_overrides, validate_signals

STRATEGIES = Path(__file__).resolve().parents[1] / "strategies"


class Demo(Strategy):
    """Demo strategy."""

    fast = Param(10, low=2, high=100, step=1)
    ratio = Param(0.5, low=0.0, high=1.0)
    mode = Param("a", choices=["a", "b"])
    flag = Param(False)

    def signals(self, data):
        return Signals(entries=data["close"] > data["open"])


def frame(n: int = 5) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = np.arange(1.0, n + 1)
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index)


def test_params_read_as_attributes_with_overrides_parsed_and_checked() -> None:
    strategy = Demo(fast="12", ratio="0.25", mode="b", flag="true")
    assert (strategy.fast, strategy.ratio, strategy.mode, strategy.flag) == (12, 0.25, "b", True)
    assert Demo().param_values == {"fast": 10, "ratio": 0.5, "mode": "a", "flag": False}
    assert Demo.strategy_name() == "demo"
    with pytest.raises(UserError, match="fast=1 is below its low bound 2"):
        Demo(fast=1)
    with pytest.raises(UserError, match="not allowed; choose one of 'a', 'b'"):
        Demo(mode="c")
    with pytest.raises(UserError, match="fast='1.5' is not a valid int"):
        Demo(fast="1.5")
    with pytest.raises(UserError, match="not of the form name=value"):
        parse_param_overrides(["fast"])


def test_crosses_are_strict() -> None:
    a = pd.Series([1.0, 2.0, 2.0, 3.0, 1.0, np.nan, 3.0])
    b = pd.Series([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    # 1->2 touches (tie, no cross), 2->3 from a tie is not a cross either, 3->1 crosses below.
    assert crossed_above(a, b).tolist() == [False, False, False, False, False, False, False]
    assert crossed_below(a, b).tolist() == [False, False, False, False, True, False, False]
    assert crossed_above(pd.Series([1.0, 3.0]), 2.0).tolist() == [False, True]
    assert crossed_above(a, b).dtype == bool


def test_loading_by_name_path_and_class() -> None:
    assert load_strategy("sma_cross", STRATEGIES).cls.__name__ == "SmaCross"
    assert load_strategy(str(STRATEGIES / "macd_trend.py")).cls.strategy_name() == "macd_trend"
    assert load_strategy(f"{STRATEGIES / 'rsi_reversion.py'}:RsiReversion").cls.__name__ == "RsiReversion"
    found, problems = discover(STRATEGIES)
    assert {"sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend"} <= set(found)
    assert problems == []
    with pytest.raises(UserError, match="did you mean rsi_reversion"):
        load_strategy("rsi_reversio", STRATEGIES)


def test_loading_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin_mod.py").write_text(textwrap.dedent('''
        from systrade import Strategy, Signals
        class Plugged(Strategy):
            """From an entry point."""
            def signals(self, data):
                return Signals(entries=data["close"] > 0)
    '''))
    dist = tmp_path / "plugin_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[systrade.strategies]\nplugged = plugin_mod:Plugged\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = load_strategy("plugged", tmp_path / "none")
    assert ref.cls.__name__ == "Plugged" and "entry point" in ref.source
    sys.modules.pop("plugin_mod", None)


def test_a_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("from systrade import Strategy\nclass Good(Strategy):\n    pass\n")
    (tmp_path / "broken.py").write_text("def (\n")
    found, problems = discover(tmp_path)
    assert "good" in found and len(problems) == 1 and "broken.py: syntax error" in problems[0]
    with pytest.raises(UserError, match="files that failed to load: .*broken.py"):
        load_strategy("missing", tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda d: d["close"] > 0, "returned Series; return Signals"),
    (lambda d: Signals(entries=(d["close"] > 0).to_numpy()), "entries is a ndarray; it must be a pandas Series"),
    (lambda d: Signals(entries=(d["close"] > 0).iloc[1:]), "entries has 4 rows but data has 5"),
    (lambda d: Signals(entries=(d["close"] > 0).reset_index(drop=True)), "index differs from data.index at row 0"),
    (lambda d: Signals(entries=(d["close"] > 2).astype(int)), "dtype int64, not bool"),
    (lambda d: Signals(entries=d["close"] > 0, exits=(d["close"] > 2).where(d["close"] > 1)),
     "exits has 1 NaN values"),
])
def test_validation_says_precisely_what_is_wrong(make, message) -> None:
    data = frame()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_signals(make(data), data, "demo")


def test_validation_accepts_good_signals() -> None:
    data = frame()
    arrays = validate_signals(Demo().signals(data), data, "demo")
    assert arrays["entries"].dtype == bool and arrays["exits"] is None

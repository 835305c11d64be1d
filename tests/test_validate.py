"""`find_problems` on planted problems, whatever the index resolution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systrade.data.validate import find_problems


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_gap_found_at_any_index_resolution(unit: str) -> None:
    index = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC", unit=unit).delete([4, 5])
    close = np.linspace(10, 11, len(index))
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
                         index=index)
    problems = find_problems(frame, "1h")
    assert [(p.kind, p.count) for p in problems] == [("gap (missing candles)", 1)]
    assert problems[0].first.startswith("2024-01-01 06:00:00")


def test_weekends_are_not_gaps_for_daily_stock_data() -> None:
    index = pd.bdate_range("2024-01-01", periods=30, tz="UTC").delete(10)  # one holiday
    close = np.linspace(10, 11, len(index))
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 0.0}, index=index)
    assert find_problems(frame, "1d") == []
    assert [p.kind for p in find_problems(frame.drop(index=frame.index[3:8]), "1d")] == ["gap (missing candles)"]

"""``@indicator`` reuse in sweeps: same results as without it, checked dependencies, safe sharing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, STRATEGIES

from systrade import Param, Signals, Strategy, crossed_above, crossed_below, indicator
from systrade.data.load import load_candles
from systrade.errors import UserError
from systrade.optimize.grid import build_grid
from systrade.optimize.sweep import SweepJob, evaluate
from systrade.reuse import _IndicatorMethod, indicator_cache
from systrade.sim.rules import PositionRules

CALLS: list[tuple[str, int]] = []


class Plain(Strategy):
    fast = Param(10, low=2, high=100, step=1)
    slow = Param(30, low=5, high=400, step=5)

    def signals(self, data):
        f = data["close"].rolling(self.fast).mean()
        s = data["close"].rolling(self.slow).mean()
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))


class Reused(Plain):
    @indicator("fast")
    def fast_ma(self, data):
        CALLS.append(("fast", self.fast))
        return data["close"].rolling(self.fast).mean()

    @indicator("slow")
    def slow_ma(self, data):
        CALLS.append(("slow", self.slow))
        return data["close"].rolling(self.slow).mean()

    def signals(self, data):
        f, s = self.fast_ma(data), self.slow_ma(data)
        f.iloc[: self.slow] = np.nan  # changing a shared result must not leak into other combinations
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))


class PlainMasked(Plain):
    def signals(self, data):
        f = data["close"].rolling(self.fast).mean()
        s = data["close"].rolling(self.slow).mean()
        f.iloc[: self.slow] = np.nan
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))


class Mutating(Reused):
    def signals(self, data):
        data["close"] = data["close"] * (1 + self.slow / 1000)  # the data changes with an undeclared param
        f, s = self.fast_ma(data), self.slow_ma(data)
        return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))


class MutatingPlain(Plain):
    def signals(self, data):
        data["close"] = data["close"] * (1 + self.slow / 1000)
        return super().signals(data)


class Undeclared(Plain):
    @indicator("fast")
    def spread(self, data):
        return data["close"].rolling(self.fast).mean() - data["close"].rolling(self.slow).mean()

    def signals(self, data):
        return Signals(entries=self.spread(data) > 0)


def job(cls: type[Strategy], grid=("fast=5:9:1", "slow=20:40:10")) -> SweepJob:
    candles = load_candles(REPO / "data", start="2024-03-01", end="2024-03-31")[0]
    return SweepJob(cls, build_grid(cls, list(grid)), candles, PositionRules(direction="both", fees=0.001), 10_000.0,
                    365.0, cache_bytes=50_000_000)


def test_reuse_gives_the_same_results_and_computes_each_window_once() -> None:
    CALLS.clear()
    reused = evaluate(job(Reused), 0, 15, job(Reused).full_window())
    plain = evaluate(job(PlainMasked), 0, 15, job(PlainMasked).full_window())
    np.testing.assert_array_equal(reused.metrics, plain.metrics)
    np.testing.assert_array_equal(reused.blocks, plain.blocks)
    assert sorted(CALLS) == sorted({("fast", f) for f in range(5, 10)} | {("slow", s) for s in (20, 30, 40)})


def test_modified_data_is_never_served_from_the_cache() -> None:
    CALLS.clear()
    mutating = evaluate(job(Mutating), 0, 15, job(Mutating).full_window())
    plain = evaluate(job(MutatingPlain), 0, 15, job(MutatingPlain).full_window())
    np.testing.assert_array_equal(mutating.metrics, plain.metrics)
    assert len(CALLS) == 30  # computed afresh every time: 15 combinations x 2 indicators


def test_an_indicator_reading_an_undeclared_param_is_an_error_even_outside_sweeps() -> None:
    data = job(Plain).candles.frame
    with pytest.raises(UserError, match=r"reads parameter 'slow', which it does not declare"):
        Undeclared().signals(data)
    with pytest.raises(UserError, match="reads parameter 'slow'"):
        evaluate(job(Undeclared, ("fast=5,6",)), 0, 2, job(Undeclared, ("fast=5,6",)).full_window())


def test_cache_is_bounded_in_bytes_and_arrays_are_shared_read_only() -> None:
    frame = job(Plain).candles.frame

    class Arrays(Plain):
        @indicator("fast")
        def ma(self, data):
            return data["close"].rolling(self.fast).mean().to_numpy()

    one = frame["close"].to_numpy().nbytes
    with indicator_cache(frame, max_bytes=2 * one) as cache:
        for fast in (5, 6, 7, 5):
            values = Arrays(fast=fast).ma(frame.copy(deep=False))
            with pytest.raises(ValueError):
                values[0] = 1.0
        assert cache.bytes <= 2 * one and len(cache.items) == 2
        assert cache.misses == 4 and cache.hits == 0  # 5 was evicted by 7 before it came back
        Arrays(fast=7).ma(frame)
        assert cache.hits == 1


def test_the_bundled_sma_cross_reuses_its_averages_and_sweeps_exactly_like_the_plain_one() -> None:
    """The bundled sma_cross declares its averages with @indicator: the same metrics, bit for bit, as its plain
    twin that computes both averages in every call, with each distinct average computed once."""
    from systrade.strategy import load_from_path

    plain = load_from_path(str(REPO / "benchmarks" / "strategies" / "sma_cross_plain.py")).cls
    bundled = load_from_path(str(STRATEGIES / "sma_cross.py")).cls
    assert all(isinstance(vars(bundled)[name], _IndicatorMethod) for name in ("fast_ma", "slow_ma"))
    a = evaluate(job(plain), 0, 15, job(plain).full_window())
    b = evaluate(job(bundled), 0, 15, job(bundled).full_window())
    np.testing.assert_array_equal(a.metrics, b.metrics)
    np.testing.assert_array_equal(a.blocks, b.blocks)


def test_a_reusing_strategy_file_is_shipped_to_workers_by_value() -> None:
    """What spawned or Dask workers receive: the job pickled, the strategy file's code by value (another
    process that never imported the file evaluates it)."""
    import io
    import subprocess
    import sys

    from systrade.optimize.parallel import serialise
    from systrade.strategy import load_from_path

    twin = load_from_path(str(REPO / "benchmarks" / "strategies" / "sma_cross_reuse.py")).cls
    code = ("import sys, cloudpickle, numpy as np; from systrade.optimize.sweep import evaluate; "
            "job = cloudpickle.loads(sys.stdin.buffer.read()); "
            "np.save(sys.stdout.buffer, evaluate(job, 0, 15, job.full_window()).metrics)")
    result = subprocess.run([sys.executable, "-c", code], input=serialise(job(twin)), capture_output=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    shipped = np.load(io.BytesIO(result.stdout))
    np.testing.assert_array_equal(shipped, evaluate(job(twin), 0, 15, job(twin).full_window()).metrics)


# In-place changes a strategy might make to ``data`` after reading one cached indicator and before the next; each
# depends on ``fast``, which the second indicator does not declare, so serving it from the cache (computed under
# another combination's change) would give other results.
IN_PLACE_CHANGES = {
    "loc": lambda d, k: d.loc.__setitem__((d.index[60 * k], "close"), 10_000.0),
    "iloc": lambda d, k: d.iloc.__setitem__((60 * k, d.columns.get_loc("close")), 10_000.0),
    "iat": lambda d, k: d.iat.__setitem__((60 * k, d.columns.get_loc("close")), 10_000.0),
    "at": lambda d, k: d.at.__setitem__((d.index[60 * k], "close"), 10_000.0),
    "a slice": lambda d, k: d.iloc.__setitem__((slice(60 * k, 60 * k + 30), d.columns.get_loc("close")), 10_000.0),
    "a column": lambda d, k: d.__setitem__("close", d["close"] * (1 + k / 1000)),
    "update": lambda d, k: d.update(d[["close"]].iloc[60 * k: 60 * k + 30] * 3),
    "mask": lambda d, k: d.mask(d > d["close"].median() * (1 + k / 1000), 0.0, inplace=True),
    "columns swapped": lambda d, k: setattr(d, "columns", [{"close": "open", "open": "close"}.get(c, c)
                                                           for c in d.columns]) if k % 2 else None,
}


def _changing(change, cached: bool) -> type[Strategy]:
    class Changing(Reused if cached else Plain):
        def signals(self, data):
            f = self.fast_ma(data) if cached else data["close"].rolling(self.fast).mean()
            change(data, self.fast)  # the data changes in place between the two indicators
            s = self.slow_ma(data) if cached else data["close"].rolling(self.slow).mean()
            return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))

    return Changing


@pytest.mark.parametrize("change", IN_PLACE_CHANGES, ids=list(IN_PLACE_CHANGES))
def test_in_place_changes_after_a_cached_indicator_are_seen_by_the_next(change: str) -> None:
    """A sweep checks cheaply, by identity, whether the frame an indicator gets is still the sweep's unchanged data;
    every kind of in-place change must make the next indicator compute afresh on the changed data."""
    cached, plain = _changing(IN_PLACE_CHANGES[change], True), _changing(IN_PLACE_CHANGES[change], False)
    got = evaluate(job(cached), 0, 15, job(cached).full_window())
    expected = evaluate(job(plain), 0, 15, job(plain).full_window())
    np.testing.assert_array_equal(got.metrics, expected.metrics)


def test_a_workers_next_chunk_reads_no_fingerprint_per_combination(monkeypatch) -> None:
    """Each chunk slices the candles into a new frame; the cache kept from the previous chunk (same memory) takes
    it as its own, so the copies handed to ``signals()`` are vouched for instead of fingerprinted one by one."""
    from systrade import reuse

    reuse.release_kept()
    sweep = job(Reused)
    evaluate(sweep, 0, 8, sweep.full_window())
    calls = []
    real = reuse._fingerprint
    monkeypatch.setattr(reuse, "_fingerprint", lambda frame: calls.append(1) or real(frame))
    second = evaluate(sweep, 8, 15, sweep.full_window())
    assert len(calls) == 1  # the check that the kept cache is for the same data; none for the 7 combinations
    reuse.release_kept()
    fresh = evaluate(job(Reused), 8, 15, sweep.full_window())
    np.testing.assert_array_equal(second.metrics, fresh.metrics)

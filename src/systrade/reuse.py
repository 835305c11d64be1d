"""``@indicator`` (exported by ``systrade``): a sweep computes an indicator once per value of its params.

A sweep calls ``signals()`` once per combination. When a strategy computes, say, a moving average that depends
only on ``fast``, every combination with the same ``fast`` recomputes it. Declaring the dependency lets the
sweep reuse it::

    class SmaCross(Strategy):
        fast = Param(10, low=2, high=100, step=1)
        slow = Param(30, low=5, high=400, step=5)

        @indicator("fast")
        def fast_ma(self, data):
            return data["close"].rolling(self.fast).mean()

        @indicator("slow")
        def slow_ma(self, data):
            return data["close"].rolling(self.slow).mean()

        def signals(self, data):
            f, s = self.fast_ma(data), self.slow_ma(data)
            return Signals(entries=crossed_above(f, s), exits=crossed_below(f, s))

Reuse is only valid if the result depends on nothing else, so it is checked rather than trusted:

* the method runs on a view of the strategy that exposes only the declared parameters: reading any other
  parameter raises an error (in a plain backtest too, so a wrong declaration is found at once);
* a cached result is used only when ``data`` is exactly the sweep's candles, unmodified: the same columns on
  the same memory (pandas copy-on-write gives any modified column new memory), else it is computed afresh;
* extra arguments are part of the key (unhashable ones disable reuse for that call).

What it cannot check, and so requires: the method is deterministic and reads no mutable global or class state.
Outside a sweep nothing is cached. Results are shared between combinations: pandas results are handed out as
copy-on-write copies and NumPy arrays read-only, so a strategy cannot change what the next combination sees.
"""

from __future__ import annotations

import functools
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from systrade.errors import UserError


class _DeclaredParams(dict):
    """Parameter values of an indicator's view: reading an undeclared parameter is an error."""

    def __init__(self, values: dict[str, Any], method: str) -> None:
        super().__init__(values)
        self.method = method

    def get(self, name: str, default: Any = None) -> Any:  # what Param.__get__ calls
        if name not in self:
            raise UserError(f"indicator {self.method} reads parameter {name!r}, which it does not declare; "
                            f"add it: @indicator({', '.join(repr(p) for p in [*self, name])})")
        return self[name]


class _Cache:
    """Indicator results of one sweep's data, least recently used first out, bounded in bytes."""

    def __init__(self, frame: pd.DataFrame, max_bytes: int) -> None:
        self.frame = frame
        self.fingerprint = _fingerprint(frame)
        self.frame_state = _state(frame)
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.known: tuple | None = None  # (state, verdict) of the last frame checked

    def is_pristine(self, data: Any) -> bool:
        if self.fingerprint is None or not isinstance(data, pd.DataFrame):
            return False
        state = _state(data)
        if state is not None and self.known is not None and _unchanged(self.known[0], state):
            return self.known[1]
        verdict = _fingerprint(data) == self.fingerprint
        if state is not None:
            self.known = (state, verdict)
        return verdict

    def vouch(self, copy: pd.DataFrame, source: Any) -> None:
        """``copy`` was just made from ``source`` by ``copy(deep=False)``: it shares the cache's memory when
        ``source`` is the cache's own, unchanged frame, so it is pristine without reading its fingerprint."""
        state = _state(copy)
        if source is self.frame and state is not None and _unchanged(self.frame_state, _state(source)):
            self.known = (state, True)

    def get(self, key: tuple) -> Any:
        found = self.items.get(key)
        if found is None:
            return None
        self.items.move_to_end(key)
        return found[0]

    def put(self, key: tuple, value: Any) -> None:
        size = _nbytes(value)
        if size is None or size > self.max_bytes:
            return
        while self.items and self.bytes + size > self.max_bytes:
            _, (_, freed) = self.items.popitem(last=False)
            self.bytes -= freed
        self.items[key] = (value, size)
        self.bytes += size


def _fingerprint(frame: pd.DataFrame) -> tuple | None:
    """Where the frame's values live: equal only for the very same, unmodified memory (None if unknown).

    Reads pandas' block manager, the cheap way to see every column's memory at once (microseconds, where
    reading the columns one by one costs more than most indicators). pandas' copy-on-write gives any
    modified or replaced column new memory, so a changed frame never matches.
    """
    try:
        blocks = []
        for block in frame._mgr.blocks:
            values = block.values
            locs = block.mgr_locs.indexer  # a slice, or an array of column positions
            blocks.append((values.ctypes.data, values.shape, values.strides, values.dtype,
                           locs if isinstance(locs, slice) else tuple(locs.tolist())))
        index = frame.index
        stamps = index.asi8  # a DatetimeIndex's int64 values (a view: no copy)
        where = (stamps.ctypes.data, stamps.shape, stamps.strides, index.dtype)
        attrs = frame.attrs
    except (AttributeError, TypeError, KeyError):
        return None
    return (where, index.name, frame.columns.tolist(), blocks, repr(sorted(attrs.items())) if attrs else "")


def _state(frame: pd.DataFrame) -> tuple | None:
    """What a frame is made of, by identity: the frame, its block manager, the manager's blocks and axes, and the
    index name and attrs by value. pandas' copy-on-write gives a frame whose memory is shared new blocks before
    any change to it, and every other change (columns, index, name, attrs) shows here too, so an unchanged state
    means unchanged data and the last verdict on it still holds (``tests/test_optimize_reuse.py`` tries every kind of
    in-place change)."""
    try:
        manager = frame._mgr
        return (frame, manager, manager.blocks, *manager.axes, frame.index.name, dict(frame.attrs))
    except (AttributeError, TypeError):
        return None


def _unchanged(before: tuple, now: tuple | None) -> bool:
    if now is None or len(before) != len(now):
        return False
    *same_objects, name, attrs = before
    *objects, name_now, attrs_now = now
    return (all(a is b for a, b in zip(same_objects, objects, strict=True)) and (name is name_now or name == name_now)
            and attrs == attrs_now)


def vouch_for_copy(copy: pd.DataFrame, source: Any) -> None:
    """Tell the active cache (if any) that ``copy`` is a fresh shallow copy of ``source``."""
    cache = _active()
    if cache is not None:
        cache.vouch(copy, source)


def _nbytes(value: Any) -> int | None:
    if isinstance(value, (pd.Series, pd.DataFrame)):
        return int(value.memory_usage(index=False, deep=False).sum()) if isinstance(value, pd.DataFrame) \
            else int(value.memory_usage(index=False, deep=False))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return None


def _shareable(value: Any) -> Any:
    """A copy the caller may change without touching the cached value."""
    if isinstance(value, (pd.Series, pd.DataFrame)):
        return value.copy(deep=False)  # copy-on-write
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    return value


class _State(threading.local):
    """Per thread (Dask workers run tasks in threads): the active caches and the one kept between chunks."""

    def __init__(self) -> None:
        self.active: list[_Cache] = []
        self.kept: _Cache | None = None


_STATE = _State()


@contextmanager
def indicator_cache(frame: pd.DataFrame, max_bytes: int, keep: bool = False):
    """Within this block, ``@indicator`` results on ``frame`` are reused across combinations.

    ``keep``: reuse the cache of the previous block when it was for the same data (a worker's next chunk).
    """
    kept = _STATE.kept
    if keep and kept is not None and kept.fingerprint is not None and kept.fingerprint == _fingerprint(frame):
        cache = kept
        cache.max_bytes = max_bytes
        # the same memory in a new frame object (a worker's next chunk slices the candles again): vouch for its
        # copies from now on
        cache.frame, cache.frame_state = frame, _state(frame)
    else:
        cache = _Cache(frame, max_bytes)
        if keep:
            _STATE.kept = cache
    _STATE.active.append(cache)
    try:
        yield cache
    finally:
        _STATE.active.remove(cache)


def release_kept() -> None:
    """Drop the cache kept between chunks (end of a sweep session)."""
    _STATE.kept = None


def _active() -> _Cache | None:
    return _STATE.active[-1] if _STATE.active else None


class _IndicatorMethod:
    """What ``@indicator`` makes of a method: a descriptor (picklable, so sweeps can ship strategies)."""

    def __init__(self, method: Callable, params: tuple[str, ...]) -> None:
        functools.update_wrapper(self, method)
        self.method = method
        self.indicator_params = params
        self.qualname = method.__qualname__
        self._checked: set[type] = set()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_checked": set()}

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, strategy: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if type(strategy) not in self._checked:
            unknown = [p for p in self.indicator_params if p not in strategy.params()]
            if unknown:
                raise UserError(f"indicator {self.qualname} declares parameter {unknown[0]!r}, which "
                                f"{type(strategy).__name__} does not have")
            self._checked.add(type(strategy))
        view = object.__new__(type(strategy))
        view._param_values = _DeclaredParams({p: getattr(strategy, p) for p in self.indicator_params},
                                             self.qualname)
        cache = _active()
        if cache is None or not cache.is_pristine(data):
            return self.method(view, data, *args, **kwargs)
        try:
            key = (type(strategy), self.qualname, tuple(view._param_values.items()), args,
                   tuple(sorted(kwargs.items())))
            hash(key)
        except TypeError:
            return self.method(view, data, *args, **kwargs)
        found = cache.get(key)
        if found is not None:
            cache.hits += 1
            return _shareable(found)
        cache.misses += 1
        value = self.method(view, data, *args, **kwargs)
        cache.put(key, value)
        return _shareable(value)


def indicator(*params: str) -> Callable[[Callable], _IndicatorMethod]:
    """Declare that a strategy method's result depends only on ``data`` and the parameters ``params``."""
    for name in params:
        if not isinstance(name, str):
            raise TypeError("@indicator takes parameter names, e.g. @indicator('fast')")

    def decorate(method: Callable) -> _IndicatorMethod:
        return _IndicatorMethod(method, tuple(params))

    return decorate

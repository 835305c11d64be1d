"""The strategy contract (what users write), its loader and the validation of its output.

A strategy is a class with ``Param`` attributes and a ``signals(data)`` method that returns
boolean ``Signals`` on the data's index. Both executors (backtest and live) call it the same way.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import inspect
import math
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError
from systrade.reuse import indicator  # noqa: F401  (part of the strategy contract: `from systrade import indicator`)

ENTRY_POINT_GROUP = "systrade.strategies"
DIRECTIONS = ("long", "short", "both")
DEFAULT_TIMEOUT_SECONDS = 600.0  # per signals() call: generous, yet a hung strategy does not hang the command


class Param:
    """A tunable strategy parameter; read it as ``self.<name>`` inside ``signals()``.

    >>> class S(Strategy):
    ...     fast = Param(10, low=2, high=100, step=1)
    >>> S(fast=20).fast
    20
    """

    def __init__(
        self,
        default: Any,
        low: float | None = None,
        high: float | None = None,
        step: float | None = None,
        choices: list | tuple | None = None,
        help: str = "",
        log: bool = False,
    ) -> None:
        if log and (low is None or high is None or low <= 0):
            raise ValueError("Param(log=True) needs positive low and high bounds")
        self.default = default
        self.low = low
        self.high = high
        self.step = step
        self.choices = tuple(choices) if choices is not None else None
        self.help = help
        self.log = log  # sampled on a log scale by `optimize --search random|tpe`
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._param_values.get(self.name, self.default)

    @property
    def kind(self) -> type:
        """The Python type values are converted to (from the default)."""
        return type(self.default)

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this parameter's type."""
        kind = self.kind
        try:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return lowered in ("true", "1", "yes")
            if kind is int:
                as_float = float(text)
                if not as_float.is_integer():
                    raise ValueError(text)
                return int(as_float)
            return kind(text)
        except ValueError:
            raise UserError(
                f"parameter {self.name}={text!r} is not a valid {kind.__name__}; "
                f"give a value like {self.default!r}"
            ) from None

    def check(self, value: Any) -> Any:
        """Return ``value`` converted and checked against low/high/choices, or raise UserError."""
        if isinstance(value, str) and self.kind is not str:
            value = self.parse(value)
        elif self.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise UserError(
                f"parameter {self.name}={value!r} is not allowed; choose one of "
                + ", ".join(repr(c) for c in self.choices)
            )
        if self.low is not None and value < self.low:
            raise UserError(f"parameter {self.name}={value!r} is below its low bound {self.low}; "
                            f"use a value in [{self.low}, {self.high}]")
        if self.high is not None and value > self.high:
            raise UserError(f"parameter {self.name}={value!r} is above its high bound {self.high}; "
                            f"use a value in [{self.low}, {self.high}]")
        return value

    def describe_range(self) -> str:
        """Human-readable range, e.g. ``2..100 step 1`` or ``one of 'a', 'b'``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is None and self.high is None:
            return "any"
        text = f"{self.low if self.low is not None else ''}..{self.high if self.high is not None else ''}"
        return text + (f" step {self.step}" if self.step is not None else "") + (" log" if self.log else "")


SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")


@dataclass(frozen=True)
class Signals:
    """What ``signals()`` returns: boolean Series on ``data.index`` (None means never).

    ``plots`` optionally names series to draw over the price in reports and the dashboard
    (``{"fast": fast_ma, "slow": slow_ma}``, each on ``data.index``); they never affect trading.
    """

    entries: pd.Series
    exits: pd.Series | None = None
    short_entries: pd.Series | None = None
    short_exits: pd.Series | None = None
    plots: dict[str, Any] | None = None

    def columns(self) -> dict[str, pd.Series | None]:
        """The four signal columns by name."""
        return {name: getattr(self, name) for name in SIGNAL_NAMES}


def _float_values(x: Any) -> np.ndarray | None:
    """``x`` as a float64 NumPy array when that is exact (a float64 Series), else None."""
    if isinstance(x, pd.Series) and x.dtype == np.float64:
        return x.to_numpy()
    return None


def _cross(a: pd.Series, b: pd.Series | float, above: bool, below: bool
           ) -> tuple[pd.Series | None, pd.Series | None] | None:
    """Compiled crossing rules for float64 Series (and real scalars): the crossings up and down asked for (None for
    the other), or None to use pandas.

    Same result as the pandas expressions (NaN compares False), without their per-operation overhead and memory
    traffic, which dominate in parameter sweeps.
    """
    x = _float_values(a)
    if x is None:
        return None
    from systrade.cross_kernel import cross_series

    if isinstance(b, pd.Series):
        y = _float_values(b)
        if y is None or not b.index.equals(a.index):
            return None
        name = a.name if b.name == a.name else None
    elif isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, (bool, np.bool_)):
        name = a.name
        y = np.broadcast_to(np.float64(b), x.shape)  # the level on every bar, without copying it
    else:
        return None
    outputs = [np.empty(len(x) if wanted else 0, dtype=bool) for wanted in (above, below)]
    cross_series(x, y, *outputs)
    # the arrays are ours: no copy
    up, down = (pd.Series(out, index=a.index, name=name, copy=False) if wanted else None
                for out, wanted in zip(outputs, (above, below), strict=True))
    return up, down


class Crossings(NamedTuple):
    """``crossings(a, b)``: where ``a`` crosses ``b`` upwards (``above``) and downwards (``below``)."""

    above: pd.Series
    below: pd.Series


def crossings(a: pd.Series, b: pd.Series | float) -> Crossings:
    """``(crossed_above(a, b), crossed_below(a, b))`` in one pass over ``a`` and ``b``: the usual entry and exit
    pair, at about half the cost of the two calls in a parameter sweep.

    >>> s = pd.Series([1.0, 2.0, 1.0]); up, down = crossings(s, 1.5); (up.tolist(), down.tolist())
    ([False, True, False], [False, False, True])
    """
    fast = _cross(a, b, above=True, below=True)
    if fast is not None:
        return Crossings(*fast)
    return Crossings(crossed_above(a, b), crossed_below(a, b))


def crossed_above(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True on bars where ``a`` moves strictly above ``b``: ``a[t-1] < b[t-1] and a[t] > b[t]``.

    Ties are not crosses, and a NaN on either bar gives False.

    >>> s = pd.Series([1.0, 2.0, 3.0]); crossed_above(s, 1.5).tolist()
    [False, True, False]
    """
    fast = _cross(a, b, above=True, below=False)
    if fast is not None:
        return fast[0]
    b_prev = b.shift(1) if isinstance(b, pd.Series) else b
    return ((a.shift(1) < b_prev) & (a > b)).astype(bool)


def crossed_below(a: pd.Series, b: pd.Series | float) -> pd.Series:
    """True on bars where ``a`` moves strictly below ``b``: ``a[t-1] > b[t-1] and a[t] < b[t]``."""
    fast = _cross(a, b, above=False, below=True)
    if fast is not None:
        return fast[1]
    b_prev = b.shift(1) if isinstance(b, pd.Series) else b
    return ((a.shift(1) > b_prev) & (a < b)).astype(bool)


class Strategy:
    """Base class for strategy plugins: declare ``Param`` attributes and implement ``signals``."""

    name: ClassVar[str | None] = None
    timeframe: ClassVar[str | None] = None
    warmup: ClassVar[int] = 0
    stop_loss: ClassVar[float | None] = None
    take_profit: ClassVar[float | None] = None
    direction: ClassVar[str] = "long"
    # Other symbols the signals read (same venue and timeframe). Inside signals(), ``self.inputs[symbol]`` is that
    # symbol's candles on ``data.index``: NaN where it has no candle, never filled from a later one.
    inputs: ClassVar[Sequence[str]] = ()
    # Several traded symbols (a rotation, a pair): signals() then receives ``{symbol: frame}`` and returns
    # ``{symbol: Signals}``; the backtest trades them as one portfolio sharing its cash.
    symbols: ClassVar[Sequence[str]] = ()

    def __init__(self, **params: Any) -> None:
        declared = self.params()
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise UserError(
                f"strategy {self.strategy_name()} has no parameter {unknown[0]!r}; "
                f"its parameters are: {', '.join(declared) or '(none)'}"
            )
        self._param_values = {name: declared[name].check(value) for name, value in params.items()}

    def signals(self, data: pd.DataFrame) -> Signals:  # pragma: no cover - abstract
        raise NotImplementedError

    def higher(self, data: pd.DataFrame, timeframe: str, apply=None):
        """``timeframe`` candles (``open high low close volume``) aligned on ``data.index``, causally: each bar sees
        the higher-timeframe candles that had closed by its own close, never the forming one (a 1h bar at 13:00
        sees yesterday's daily candle). Built from ``data`` itself, so backtest, sweep, replay and the daemon see
        the same values; NaN until the first whole higher candle. ``apply`` computes an indicator on the higher
        candles themselves, aligned the same way:

        >>> daily = self.higher(data, "1d")
        >>> daily_sma = self.higher(data, "1d", apply=lambda d: d["close"].rolling(20).mean())
        >>> uptrend = daily["close"] > daily_sma
        """
        from systrade.data.align import higher_timeframe

        return higher_timeframe(data, timeframe, apply=apply)

    def valid(self) -> bool:
        """Whether this combination of parameter values makes sense (e.g. ``self.fast < self.slow``).

        Override it to declare constraints between parameters once: sweeps skip invalid combinations and
        samplers never evaluate invalid proposals.
        """
        return True

    @classmethod
    def params(cls) -> dict[str, Param]:
        """Declared parameters in definition order (base classes first)."""
        found: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Param):
                    found[attr] = value
        return found

    @classmethod
    def strategy_name(cls) -> str:
        """The ``name`` attribute, else the class name in snake_case."""
        return cls.name or snake_case(cls.__name__)

    @classmethod
    def docstring(cls) -> str:
        """The class's own docstring, cleaned; "" when it has none (never the base class's)."""
        doc = vars(cls).get("__doc__")
        return inspect.cleandoc(doc) if isinstance(doc, str) else ""

    @classmethod
    def summary(cls) -> str:
        """First line of the class's own docstring ("" when it has none)."""
        doc = cls.docstring()
        return doc.splitlines()[0] if doc else ""

    @property
    def param_values(self) -> dict[str, Any]:
        """Every parameter's effective value (overrides and defaults)."""
        return {name: getattr(self, name) for name in self.params()}


@functools.lru_cache(maxsize=256)
def snake_case(name: str) -> str:
    """``SmaCross`` -> ``sma_cross``; ``MACDTrend`` -> ``macd_trend`` (remembered: sweeps ask once per call)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def parse_param_overrides(items: list[str] | None) -> dict[str, str]:
    """Turn ``["fast=12", "slow=40"]`` into a dict, rejecting malformed items."""
    overrides: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {item!r} is not of the form name=value, e.g. --param fast=12")
        overrides[key.strip()] = value.strip()
    return overrides


# ---------------------------------------------------------------- loading


ORIGINS = ("project", "entry point", "bundled")  # where strategies are found by name, the first wins
Folders = str | Path | Sequence[str | Path]  # the project's strategy folder(s), searched in order


@dataclass(frozen=True)
class StrategyRef:
    """Where a strategy class came from (for `strategies list/show`).

    ``origin`` is one of ORIGINS, or "file" for a path given on the command line; ``shadows`` names the origins of
    other strategies of the same name that this one wins over."""

    cls: type[Strategy]
    source: str
    origin: str = "file"
    shadows: tuple[str, ...] = ()


def _strategy_classes(module: Any) -> list[type[Strategy]]:
    return [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Strategy) and obj is not Strategy
        and obj.__module__ == module.__name__
    ]


def _import_file(path: Path) -> Any:
    module_name = f"systrade_user_strategy_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot be imported as a Python file; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise UserError(f"{path}: syntax error on line {exc.lineno}: {exc.msg}; fix the file") from exc
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"{path}: importing it failed with {type(exc).__name__}: {exc}; fix the file") from exc
    return module


def load_from_path(spec: str) -> StrategyRef:
    """Load ``file.py`` (exactly one Strategy class) or ``file.py:ClassName``."""
    file_part, _, class_name = spec.partition(":")
    path = Path(file_part)
    if not path.is_file():
        raise UserError(f"strategy file {path} does not exist; check the path")
    classes = _strategy_classes(_import_file(path))
    if class_name:
        for cls in classes:
            if cls.__name__ == class_name:
                return StrategyRef(cls, str(path))
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise UserError(f"{path} has no Strategy class {class_name!r}; classes found: {names}")
    if not classes:
        raise UserError(f"{path} defines no Strategy subclass; add `class MyStrategy(Strategy): ...`")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise UserError(f"{path} defines several strategies ({names}); pick one with {path}:ClassName")
    return StrategyRef(classes[0], str(path))


def _folders(folders: Folders) -> list[Path]:
    return [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]


def _from_folder(folder: Path, origin: str, problems: list[str]) -> list[tuple[str, StrategyRef]]:
    found = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        if path.name.startswith("_"):
            continue
        try:
            module = _import_file(path)
        except UserError as exc:
            problems.append(str(exc))
            continue
        found.extend((cls.strategy_name(), StrategyRef(cls, str(path), origin)) for cls in _strategy_classes(module))
    return found


def discover(folders: Folders = "strategies") -> tuple[dict[str, StrategyRef], list[str]]:
    """Every strategy by name, plus load problems: the project's ``folders/*.py`` (in order), then installed
    packages' entry points, then the strategies bundled with systrade. The first found of a name wins."""
    from systrade.bundled import STRATEGIES_DIR

    problems: list[str] = []
    candidates: list[tuple[str, StrategyRef]] = []
    for folder in _folders(folders):
        candidates.extend(_from_folder(folder, "project", problems))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            problems.append(f"entry point {ep.name}: {type(exc).__name__}: {exc}")
            continue
        if inspect.isclass(cls) and issubclass(cls, Strategy):
            candidates.append((ep.name, StrategyRef(cls, f"entry point {ep.value}", "entry point")))
    candidates.extend(_from_folder(STRATEGIES_DIR, "bundled", problems))
    found: dict[str, StrategyRef] = {}
    for name, ref in candidates:
        winner = found.get(name)
        if winner is None:
            found[name] = ref
        elif ref.cls is not winner.cls:  # the same file reached twice (a folder linked to the bundled one) is one
            found[name] = replace(winner, shadows=(*winner.shadows, ref.origin))
    return found, problems


def load_strategy(spec: str, folders: Folders = "strategies") -> StrategyRef:
    """Resolve a strategy by path (``x.py``, ``x.py:Class``) or by name (see ``discover``)."""
    if spec.endswith(".py") or ".py:" in spec:
        return load_from_path(spec)
    found, problems = discover(folders)
    if spec in found:
        return found[spec]
    close = difflib.get_close_matches(spec, list(found), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else (
        f"known strategies: {', '.join(sorted(found)) or 'none'}")
    message = f"unknown strategy {spec!r}; {hint} (`systrade strategies list` shows all)"
    if problems:
        message += "; files that failed to load: " + "; ".join(problems)
    raise UserError(message)


def build_strategy(ref: StrategyRef, overrides: dict[str, Any] | None = None) -> Strategy:
    """Instantiate with parameter overrides (validated against their ranges), after checking the class."""
    check_strategy_class(ref)
    return ref.cls(**(overrides or {}))


def check_strategy_class(ref: StrategyRef) -> None:
    """Refuse a strategy whose own declarations contradict themselves (a Param default outside its bounds or
    choices, ``low > high``, a ``warmup`` that is not a whole number...), naming the file and the fix."""
    cls, where = ref.cls, f"strategy {ref.cls.strategy_name()} ({ref.source})"
    for name, param in cls.params().items():
        if param.low is not None and param.high is not None and param.low > param.high:
            raise UserError(f"{where}: Param {name} has low {param.low} above high {param.high}; swap them")
        if param.step is not None and not param.step > 0:
            raise UserError(f"{where}: Param {name} has step {param.step}; give a positive step or none")
        try:
            param.check(param.default)
        except UserError as exc:
            raise UserError(f"{where}: the default of Param {name} does not fit its own declaration ({exc}); "
                            "fix the Param") from None
    warmup = cls.warmup
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise UserError(f"{where}: warmup = {warmup!r} is not a number of bars; give a whole number >= 0")
    if cls.direction not in DIRECTIONS:
        raise UserError(f"{where}: direction = {cls.direction!r}; use one of {', '.join(DIRECTIONS)}")
    for attr in ("stop_loss", "take_profit"):
        value = getattr(cls, attr)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise UserError(f"{where}: {attr} = {value!r}; give a positive fraction of the entry price "
                            "(0.05 = 5%) or None")
    if cls.timeframe is not None:
        try:
            timeframe_seconds(cls.timeframe)
        except UserError as exc:
            raise UserError(f"{where}: timeframe = {cls.timeframe!r} ({exc})") from None


# ---------------------------------------------------------------- calling signals()

_CALL_TIMEOUT = {"seconds": DEFAULT_TIMEOUT_SECONDS}


class _StrategyTimeout(BaseException):
    """Raised inside a hanging ``signals()``; a BaseException, so a strategy's ``except Exception`` cannot
    swallow it."""


def set_call_timeout(seconds: float | None) -> None:
    """Longest one ``signals()`` call may take (None or 0: no limit); the CLI's ``--timeout``."""
    _CALL_TIMEOUT["seconds"] = seconds or None


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread only: timers are delivered there)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame) -> None:
        raise _StrategyTimeout

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_signals(strategy: Strategy, data: pd.DataFrame) -> dict[str, np.ndarray | None]:
    """Call ``strategy.signals`` on a shallow copy of ``data`` and validate the result.

    The strategy's own mistakes become one clear error: an exception names the strategy's file and line, and
    a call that runs past the timeout (``--timeout``) is stopped. pandas' copy-on-write keeps whatever the
    strategy changes away from ``data``.
    """
    return call_signals_with_plots(strategy, data, plots=False)[0]


def call_signals_with_plots(strategy: Strategy, data: pd.DataFrame, plots: bool = True
                            ) -> tuple[dict[str, np.ndarray | None], dict[str, pd.Series]]:
    """``call_signals`` plus the strategy's validated ``plots`` (for reports; sweeps skip their checks)."""
    name = strategy.strategy_name()
    declared = type(strategy).inputs
    if declared:
        strategy.inputs = aligned_inputs(data, declared, name)
    from systrade.reuse import vouch_for_copy

    argument = data.copy(deep=False)
    vouch_for_copy(argument, data)  # a sweep's cached indicators need not re-read the copy's fingerprint
    result = _guarded(strategy, argument, f" on {len(data)} candles")
    return validate_signals(result, data, name), validate_plots(result, data, name) if plots else {}


def _guarded(strategy: Strategy, argument: Any, size: str = "") -> Any:
    """``strategy.signals(argument)`` under the ``--timeout``, its own failures turned into one clear error."""
    name = strategy.strategy_name()
    seconds = _CALL_TIMEOUT["seconds"]
    try:
        with _deadline(seconds):
            return strategy.signals(argument)
    except UserError:
        raise
    except _StrategyTimeout:
        raise UserError(f"strategy {name}: signals() ran longer than {seconds:g} s{size} and was stopped; fix a loop "
                        "that never ends, or raise the limit with --timeout SECONDS") from None
    except Exception as exc:
        raise UserError(f"strategy {name}: signals() raised {type(exc).__name__}: {exc} "
                        f"({_where_in(type(strategy), exc)}); fix the strategy (--debug shows the traceback)") from exc


def aligned_inputs(data: pd.DataFrame, declared: Sequence[str], name: str) -> dict[str, pd.DataFrame]:
    """Each declared input's candles on ``data.index``: a bar's own candle of that symbol (closed when the bar
    closes), NaN where that symbol has none; nothing after the bar is ever used."""
    frames = data.attrs.get("inputs") or {}
    missing = [symbol for symbol in declared if symbol not in frames]
    if missing:
        raise UserError(f"strategy {name} reads inputs {', '.join(missing)}, which the run was not given; store "
                        "them beside the traded symbol (`systrade data download <exchange> "
                        f"{' '.join(missing)} --timeframe ...`)")
    return {symbol: frames[symbol].reindex(data.index) for symbol in declared}


def call_signals_together(strategy: Strategy, datas: dict[str, pd.DataFrame], plots: dict | None = None
                          ) -> dict[str, dict]:
    """Call a multi-symbol strategy's ``signals`` once with ``{symbol: frame}`` and validate each symbol's result
    against its own frame (the same errors as ``call_signals``). Given a ``plots`` dict, each symbol's validated
    plots are put in it."""
    name = strategy.strategy_name()
    declared = type(strategy).inputs
    if declared:  # inputs on the union of the traded symbols' times (each frame carries them in its attrs)
        frames = list(datas.values())
        union = frames[0].index
        for frame in frames[1:]:
            union = union.union(frame.index)
        carrier = pd.DataFrame(index=union)
        carrier.attrs = dict(frames[0].attrs)
        strategy.inputs = aligned_inputs(carrier, declared, name)
    result = _guarded(strategy, {symbol: frame.copy(deep=False) for symbol, frame in datas.items()})
    if not isinstance(result, dict) or set(result) != set(datas):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise UserError(f"strategy {name} trades {', '.join(datas)}: signals() must return {{symbol: Signals}} for "
                        f"exactly those symbols, got {got}")
    if plots is not None:
        plots.update({symbol: validate_plots(result[symbol], datas[symbol], f"{name} ({symbol})")
                      for symbol in datas})
    return {symbol: validate_signals(result[symbol], datas[symbol], f"{name} ({symbol})") for symbol in datas}


def _where_in(cls: type, exc: BaseException) -> str:
    """``file:line`` of the deepest traceback frame inside the strategy's own file (else the deepest frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    try:
        own = str(Path(inspect.getsourcefile(cls) or "").resolve())
    except TypeError:
        own = ""
    inside = [f for f in frames if own and str(Path(f.filename).resolve()) == own]
    frame = (inside or frames)[-1]
    return f"{frame.filename}, line {frame.lineno}"


# ---------------------------------------------------------------- validation


def validate_signals(result: Any, data: pd.DataFrame, strategy_name: str) -> dict[str, np.ndarray | None]:
    """Check what ``signals()`` returned; give a boolean array per column (None where not given).

    Every problem is reported precisely: wrong type, misaligned index, non-boolean dtype, NaN.
    """
    where = f"strategy {strategy_name}: signals()"
    if not isinstance(result, Signals):
        raise UserError(f"{where} returned {type(result).__name__}; return Signals(entries=..., exits=...)")
    arrays: dict[str, np.ndarray | None] = {}
    for column, series in result.columns().items():
        if series is None:
            if column == "entries":
                raise UserError(f"{where}.entries is None; every strategy must give entries")
            arrays[column] = None
            continue
        if not isinstance(series, pd.Series):
            raise UserError(f"{where}.{column} is a {type(series).__name__}; it must be a pandas Series "
                            "on data.index")
        if len(series) != len(data):
            raise UserError(f"{where}.{column} has {len(series)} rows but data has {len(data)}; "
                            "build it from data so it shares data.index")
        if not series.index.equals(data.index):
            mismatch = next(i for i, (a, b) in enumerate(zip(series.index, data.index, strict=True)) if a != b)
            raise UserError(f"{where}.{column} index differs from data.index at row {mismatch} "
                            f"({series.index[mismatch]!r} vs {data.index[mismatch]!r}); "
                            "do not reset, shift or resample the index")
        if series.dtype == np.bool_:  # a NumPy bool column cannot hold NaN: skip the scan (sweeps call this often)
            arrays[column] = series.to_numpy()
            continue
        nulls = series.isna()
        if nulls.any():
            first = series.index[np.argmax(nulls.to_numpy())]
            raise UserError(f"{where}.{column} has {int(nulls.sum())} NaN values (first at {first}); "
                            "use .fillna(False)")
        if not pd.api.types.is_bool_dtype(series.dtype):
            raise UserError(f"{where}.{column} has dtype {series.dtype}, not bool; "
                            "build it from comparisons or use .astype(bool)")
        arrays[column] = series.to_numpy(dtype=bool)
    return arrays


def validate_plots(result: Signals, data: pd.DataFrame, strategy_name: str) -> dict[str, pd.Series]:
    """Check ``Signals.plots``: a dict of name -> numeric Series (on ``data.index``) or array as long as ``data``.

    Gives float Series on ``data.index`` (NaN where an indicator has no value yet)."""
    where = f"strategy {strategy_name}: signals().plots"
    plots = result.plots
    if plots is None:
        return {}
    if not isinstance(plots, dict):
        raise UserError(f"{where} is a {type(plots).__name__}; give a dict of name -> series, "
                        "e.g. plots={\"fast\": fast, \"slow\": slow}")
    checked: dict[str, pd.Series] = {}
    for key, values in plots.items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{where} has the key {key!r}; name each plotted series with a non-empty string")
        if isinstance(values, pd.Series):
            if len(values) == len(data) and not values.index.equals(data.index):
                raise UserError(f"{where}[{key!r}] has an index that differs from data.index; build it from data "
                                "without resetting, shifting or resampling the index")
            values = values.to_numpy()
        elif isinstance(values, (np.ndarray, list, tuple)):
            values = np.asarray(values)
        else:
            raise UserError(f"{where}[{key!r}] is a {type(values).__name__}; give a pandas Series on data.index "
                            "or an array as long as data")
        if values.ndim != 1 or len(values) != len(data):
            raise UserError(f"{where}[{key!r}] has {values.shape[0] if values.ndim else 0} values but data has "
                            f"{len(data)} rows; give one value per candle")
        if values.dtype == object or not (np.issubdtype(values.dtype, np.number)
                                          or np.issubdtype(values.dtype, np.bool_)):
            try:
                values = values.astype(float)
            except (TypeError, ValueError):
                raise UserError(f"{where}[{key!r}] holds {values.dtype} values, not numbers; plot numeric "
                                "series only") from None
        checked[key] = pd.Series(values.astype(float), index=data.index, name=key)
    return checked

"""Sampled parameter searches (``optimize --search random|tpe``): the search space, the samplers, the trials.

A trial is a combination like a grid's, evaluated by the same sweep machinery (its parameter set travels with
the task). Proposals depend only on the seed and the results so far, never on the worker count: the random
search draws its trials from ``numpy.random.Generator(seed)``; TPE (optuna) asks a batch of ``TPE_BATCH``
proposals, the batch is evaluated in parallel, and the results are told back in the order asked. A proposal
that repeats an evaluated trial, or that the strategy's ``valid()`` refuses, is not evaluated and is not a
trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from systrade.errors import UserError
from systrade.optimize.grid import checked_fixed, default_values, has_constraints, is_valid, parse_grid_spec
from systrade.strategy import Param, Strategy

SEARCHES = ("grid", "random", "tpe")
TPE_BATCH = 16  # proposals per TPE round (fixed: the trials must not depend on the worker count)
RANDOM_BATCH = 256  # random trials evaluated between two looks at the clock (--search-timeout)
MAX_PROPOSALS_PER_TRIAL = 50  # give up when the space (after constraints) holds fewer distinct trials


@dataclass(frozen=True)
class Dimension:
    """One sampled parameter: a finite list of values, or a continuous interval (``values`` None)."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    kind: type = float

    def describe(self) -> Any:
        if self.values is not None:
            return list(self.values)
        return f"{self.low}..{self.high}" + (" log" if self.log else "")

    def numeric_step(self) -> Decimal | None:
        """The step when the values are numbers evenly spaced from low to high (for TPE's ordered sampling)."""
        values = self.values
        if values is None or len(values) < 2 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                    for v in values):
            return None
        dec = [Decimal(str(v)) for v in values]
        step = dec[1] - dec[0]
        if step <= 0 or any(b - a != step for a, b in zip(dec, dec[1:], strict=False)):
            return None
        return step


def _dimension(param: Param, spec_values: tuple[Any, ...] | None) -> Dimension | None:
    """How a parameter is sampled: the ``--grid`` values; continuous when a float range has no step (or an
    integer range is log-scaled without a step); else the values of its own range (choices, bool, steps)."""
    if spec_values is not None:
        return Dimension(param.name, tuple(spec_values), kind=param.kind)
    ranged = param.choices is None and param.low is not None and param.high is not None
    if ranged and param.kind is float and param.step is None:
        return Dimension(param.name, None, float(param.low), float(param.high), param.log, float)
    if ranged and param.kind is int and param.log and param.step in (None, 1):
        return Dimension(param.name, None, float(param.low), float(param.high), True, int)
    values = default_values(param)
    return None if values is None else Dimension(param.name, values, kind=param.kind)


@dataclass
class Space:
    """What a sampled search varies (in declaration order) and what it holds fixed."""

    strategy_cls: type[Strategy]
    dims: tuple[Dimension, ...]
    fixed: dict[str, Any]
    order: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def size(self) -> float:
        """Distinct parameter sets (inf with a continuous dimension), before constraints."""
        return math.prod(len(d.values) if d.values is not None else math.inf for d in self.dims)

    def params(self, swept: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.fixed, **swept}
        return {name: merged[name] for name in self.order}

    def describe(self) -> dict[str, Any]:
        return {d.name: d.describe() for d in self.dims}


def build_space(cls: type[Strategy], specs: list[str] | None, fixed: dict[str, str] | None = None) -> Space:
    """The search space: the ``--grid`` items (their values, sampled), else every Param with a range."""
    params = cls.params()
    fixed = checked_fixed(cls, fixed)
    given: dict[str, tuple[Any, ...]] = {}
    for spec in specs or []:
        name, values = parse_grid_spec(spec, params)
        if name in given:
            raise UserError(f"--grid gives {name} twice; give each parameter once")
        given[name] = values
    dims = []
    for name, param in params.items():
        if name in fixed and name in given:
            raise UserError(f"parameter {name} is given with both --grid and --param; keep one")
        if name in fixed or (given and name not in given):
            continue
        dim = _dimension(param, given.get(name))
        if dim is not None:
            dims.append(dim)
    if not dims:
        raise UserError(f"strategy {cls.strategy_name()} has no parameter with a range to search; "
                        "give one with --grid name=start:stop:step")
    swept = {d.name for d in dims}
    fixed_values = {name: params[name].check(value) for name, value in fixed.items()}
    for name, param in params.items():
        if name not in swept and name not in fixed_values:
            fixed_values[name] = param.default
    return Space(cls, tuple(dims), fixed_values, tuple(params))


@dataclass
class Trials:
    """The distinct parameter sets a sampled search evaluated, in the order they were proposed.

    Read like a ``Grid`` (``names``, ``values``, ``fixed``, ``len``, ``combo(k)``, ``describe()``).
    """

    space: Space
    combos: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0  # proposals the strategy's valid() refused (not evaluated, not trials)
    repeats: int = 0  # proposals equal to an earlier trial (not evaluated again)
    stopped: str = ""  # why the search ended before --trials, if it did

    @property
    def names(self) -> tuple[str, ...]:
        return self.space.names

    @property
    def fixed(self) -> dict[str, Any]:
        return self.space.fixed

    @property
    def skipped(self) -> int:
        return self.rejected

    @property
    def values(self) -> tuple[tuple[Any, ...], ...]:
        """Per swept parameter, the distinct values tried, sorted (for heatmap axes)."""
        out = []
        for name in self.names:
            seen = list(dict.fromkeys(c[name] for c in self.combos))
            try:
                seen.sort()
            except TypeError:
                pass
            out.append(tuple(seen))
        return tuple(out)

    def __len__(self) -> int:
        return len(self.combos)

    def combo(self, k: int) -> dict[str, Any]:
        return dict(self.combos[k])

    def describe(self) -> dict[str, Any]:
        return self.space.describe()


def _key(space: Space, params: dict[str, Any]) -> tuple:
    return tuple(params[name] for name in space.names)


def _draw(dim: Dimension, rng: np.random.Generator) -> Any:
    if dim.values is not None:
        return dim.values[int(rng.integers(len(dim.values)))]
    if dim.log:
        value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
    else:
        value = rng.uniform(dim.low, dim.high)
    value = min(max(value, dim.low), dim.high)
    return int(round(value)) if dim.kind is int else float(value)


class RandomSampler:
    """Independent uniform draws (log-uniform on log-scaled parameters) from ``Generator(seed)``."""

    def __init__(self, space: Space, seed: int) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self) -> dict[str, Any]:
        return {d.name: _draw(d, self.rng) for d in self.space.dims}

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        pass


class TpeSampler:
    """optuna's Tree-structured Parzen Estimator, seeded; proposals asked and told in a fixed order."""

    def __init__(self, space: Space, seed: int) -> None:
        import logging

        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self.optuna = optuna
        self.space = space
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self.pending: dict[int, Any] = {}

    def _suggest(self, trial: Any, dim: Dimension) -> Any:
        if dim.values is None:
            if dim.kind is int:
                return trial.suggest_int(dim.name, int(dim.low), int(dim.high), log=dim.log)
            return trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
        step = dim.numeric_step()
        if step is None:
            return dim.values[trial.suggest_categorical(dim.name, list(range(len(dim.values))))] \
                if any(not isinstance(v, (str, int, float, bool)) for v in dim.values) \
                else trial.suggest_categorical(dim.name, list(dim.values))
        if dim.kind is int:
            return trial.suggest_int(dim.name, int(dim.values[0]), int(dim.values[-1]), step=int(step))
        raw = trial.suggest_float(dim.name, float(dim.values[0]), float(dim.values[-1]), step=float(step))
        return min(dim.values, key=lambda v: abs(v - raw))  # the exact decimal value, not a drifted float

    def ask(self) -> dict[str, Any]:
        trial = self.study.ask()
        params = {d.name: self._suggest(trial, d) for d in self.space.dims}
        self.pending[id(params)] = trial
        return params

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        trial = self.pending.pop(id(params))
        if value is None or math.isnan(value):
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, max(min(value, 1e300), -1e300))


COUNT_LIMIT = 200_000  # a finite space up to this size is counted exactly (with its constraints)


def _distinct_valid(space: Space) -> float:
    """How many distinct parameter sets the space holds that ``valid()`` accepts (inf when not countable)."""
    size = space.size()
    if not math.isfinite(size):
        return math.inf
    if not has_constraints(space.strategy_cls):
        return size
    if size > COUNT_LIMIT:
        return math.inf
    import itertools

    names = space.names
    return sum(is_valid(space.strategy_cls, space.params(dict(zip(names, values, strict=True))))
               for values in itertools.product(*(d.values for d in space.dims)))


Evaluate = Callable[[list[dict[str, Any]]], list[float]]


def run_search(space: Space, kind: str, n_trials: int, seed: int, evaluate: Evaluate,
               timeout: float | None = None, clock: Callable[[], float] | None = None) -> Trials:
    """Propose, filter and evaluate trials until ``n_trials`` distinct valid ones are done (or the time is up).

    ``evaluate(params_list)`` returns the ranking metric of each (NaN when undefined), in order; it is called
    once per batch, so the batch is what runs in parallel.
    """
    import time

    clock = clock or time.monotonic
    started = clock()
    sampler = TpeSampler(space, seed) if kind == "tpe" else RandomSampler(space, seed)
    batch_size = TPE_BATCH if kind == "tpe" else RANDOM_BATCH
    trials = Trials(space)
    results: dict[tuple, float] = {}
    constrained = has_constraints(space.strategy_cls)
    target = n_trials
    available = _distinct_valid(space) if space.size() < n_trials or constrained else math.inf
    if available < n_trials:
        target = int(available)
        trials.stopped = f"the search space has only {target:,} distinct valid parameter sets"
    proposals, limit = 0, MAX_PROPOSALS_PER_TRIAL * n_trials + 1000
    while len(trials) < target:
        if timeout is not None and clock() - started >= timeout:
            trials.stopped = f"--search-timeout {timeout:g} s reached"
            break
        if proposals >= limit:
            trials.stopped = (f"no new valid parameter set in {limit:,} proposals; the search space holds "
                              "fewer distinct valid sets than --trials")
            break
        batch: list[dict[str, Any]] = []
        keys: set[tuple] = set()
        told_later: list[dict[str, Any]] = []
        want = min(batch_size, target - len(trials))
        while len(batch) < want and proposals < limit:
            proposals += 1
            swept = sampler.ask()
            key = _key(space, swept)
            if key in results or key in keys:
                trials.repeats += 1
                if key in results:
                    sampler.tell(swept, results[key])
                else:
                    told_later.append(swept)
                continue
            if constrained and not is_valid(space.strategy_cls, space.params(swept)):
                trials.rejected += 1
                sampler.tell(swept, None)
                continue
            keys.add(key)
            batch.append(swept)
        if not batch:
            continue
        values = evaluate([space.params(s) for s in batch])
        for swept, value in zip(batch, values, strict=True):
            results[_key(space, swept)] = value
            trials.combos.append(space.params(swept))
            sampler.tell(swept, value)
        for swept in told_later:
            sampler.tell(swept, results[_key(space, swept)])
    return trials

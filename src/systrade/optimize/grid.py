"""Parameter grids for sweeps: ``--grid`` specs, defaults from each Param's range, and ``--memory`` sizes.

``name=start:stop:step`` includes both ends (``fast=5:40:1`` has 36 values); ``name=v1,v2,...`` lists values.
Without any ``--grid``, every Param with a range (low/high/step, or choices) is swept. Ranges are expanded in
decimal arithmetic, so ``0.5:2:0.25`` gives exactly 0.5, 0.75, ..., 2.0 (no float drift).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from systrade.errors import UserError
from systrade.strategy import Param, Strategy

MAX_VALUES_PER_PARAM = 1_000_000
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class Grid:
    """The swept parameters (in declaration order) with their values, plus the fixed ones.

    Combination ``k`` is the ``k``-th element of the Cartesian product in that order (the last parameter
    varies fastest), which is also the order ties are broken in.
    """

    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    fixed: dict[str, Any]
    order: tuple[str, ...] = ()  # every parameter in declaration order (for params dicts)
    keep: tuple[int, ...] | None = None  # positions in the full product that pass Strategy.valid (None: all)

    def __len__(self) -> int:
        return len(self.keep) if self.keep is not None else self.full_size()

    def full_size(self) -> int:
        """Combinations in the Cartesian product, invalid ones included."""
        return math.prod(len(v) for v in self.values) if self.names else 1

    @property
    def skipped(self) -> int:
        """Combinations left out because the strategy's ``valid()`` refused them."""
        return self.full_size() - len(self)

    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)

    def combo(self, k: int) -> dict[str, Any]:
        """Every parameter's value (fixed and swept) for combination ``k`` (counting valid ones only)."""
        params = dict(self.fixed)
        full = self.keep[k] if self.keep is not None else k
        for name, values, pos in zip(self.names, self.values, self.indices(full), strict=True):
            params[name] = values[pos]
        return self._ordered(params)

    def _ordered(self, params: dict[str, Any]) -> dict[str, Any]:
        return {name: params[name] for name in self.order} if self.order else params

    def indices(self, k: int) -> tuple[int, ...]:
        """Position of combination ``k`` of the full product along each swept parameter."""
        out = []
        for size in reversed(self.shape()):
            k, pos = divmod(k, size)
            out.append(pos)
        return tuple(reversed(out))

    def combos(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        stop = len(self) if stop is None else stop
        return [self.combo(k) for k in range(start, stop)]

    def describe(self) -> dict[str, list]:
        return {name: list(values) for name, values in zip(self.names, self.values, strict=True)}


def _decimal(text: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UserError(f"--grid {spec!r}: {text!r} is not a number; use name=start:stop:step, "
                        "e.g. fast=5:40:1") from None
    if not value.is_finite():
        raise UserError(f"--grid {spec!r}: {text!r} is not a finite number")
    return value


def decimal_range(start: Decimal, stop: Decimal, step: Decimal, spec: str) -> list[Decimal]:
    """``start, start+step, ...`` up to and including ``stop`` (exact decimal steps)."""
    if step <= 0:
        raise UserError(f"--grid {spec!r}: the step must be positive")
    if stop < start:
        raise UserError(f"--grid {spec!r}: stop is below start; write name=start:stop:step with start <= stop")
    count = int((stop - start) / step) + 1
    if count > MAX_VALUES_PER_PARAM:
        raise UserError(f"--grid {spec!r} has {count:,} values; use a larger step")
    return [start + i * step for i in range(count)]


def _convert(param: Param, value: Decimal | str, spec: str) -> Any:
    """A grid value in the parameter's type, checked against its low/high/choices."""
    text = format(value, "f") if isinstance(value, Decimal) else value
    if param.kind is int and isinstance(value, Decimal) and value != value.to_integral_value():
        raise UserError(f"--grid {spec!r}: {param.name} is an integer parameter but the grid gives {text}; "
                        "use whole numbers")
    if param.kind is float and isinstance(value, Decimal):
        return param.check(float(value))
    return param.check(text)


def parse_grid_spec(spec: str, params: dict[str, Param]) -> tuple[str, tuple[Any, ...]]:
    """One ``--grid`` item: ``name=start:stop:step`` or ``name=v1,v2,...`` (or a single value)."""
    name, sep, body = spec.partition("=")
    name = name.strip()
    if not sep or not name or not body.strip():
        raise UserError(f"--grid {spec!r} is not of the form name=start:stop:step or name=v1,v2,...")
    if name not in params:
        raise UserError(f"--grid {spec!r}: the strategy has no parameter {name!r}; its parameters are: "
                        + (", ".join(params) or "(none)"))
    param = params[name]
    if ":" in body:
        parts = body.split(":")
        if len(parts) != 3 or param.kind not in (int, float):
            raise UserError(f"--grid {spec!r}: a range is start:stop:step (both ends included) and needs a "
                            "numeric parameter; list values with commas otherwise")
        start, stop, step = (_decimal(p, spec) for p in parts)
        raw: list[Decimal | str] = list(decimal_range(start, stop, step, spec))
    else:
        raw = [item.strip() for item in body.split(",")]
        if any(not item for item in raw):
            raise UserError(f"--grid {spec!r} has an empty value; write name=v1,v2,...")
    values = tuple(dict.fromkeys(_convert(param, v, spec) for v in raw))  # unique, first-seen order
    return name, values


def default_values(param: Param) -> tuple[Any, ...] | None:
    """The values a Param's own range gives (choices, or low..high by step), or None if it has no range."""
    if param.choices is not None:
        return tuple(param.choices)
    if param.kind is bool:
        return (False, True)
    if param.low is None or param.high is None or param.kind not in (int, float):
        return None
    step = param.step if param.step is not None else (1 if param.kind is int else None)
    if step is None:
        raise UserError(f"parameter {param.name} is continuous ({param.low}..{param.high}, no step), so it has no "
                        f"grid; give it a step (--grid {param.name}=start:stop:step), fix it (--param "
                        f"{param.name}=...) or sample it (--search random|tpe)")
    spec = f"{param.name}={param.low}:{param.high}:{step}"
    values = decimal_range(Decimal(str(param.low)), Decimal(str(param.high)), Decimal(str(step)), spec)
    return tuple(param.kind(float(v)) if param.kind is float else int(v) for v in values)


def checked_fixed(cls: type[Strategy], fixed: dict[str, str] | None) -> dict[str, str]:
    """The ``--param`` overrides, each naming a parameter the strategy has."""
    params = cls.params()
    fixed = dict(fixed or {})
    for name in fixed:
        if name not in params:
            raise UserError(f"strategy {cls.strategy_name()} has no parameter {name!r}; its parameters are: "
                            + (", ".join(params) or "(none)"))
    return fixed


def build_grid(cls: type[Strategy], specs: list[str] | None, fixed: dict[str, str] | None = None) -> Grid:
    """The sweep grid: the ``--grid`` specs, else every Param that has a range; the rest stay fixed.

    ``fixed`` are ``--param`` overrides (strings); a parameter may not be both fixed and swept.
    """
    params = cls.params()
    fixed = checked_fixed(cls, fixed)
    swept: dict[str, tuple[Any, ...]] = {}
    if specs:
        for spec in specs:
            name, values = parse_grid_spec(spec, params)
            if name in swept:
                raise UserError(f"--grid gives {name} twice; give each parameter once")
            swept[name] = values
    else:
        for name, param in params.items():
            if name in fixed:
                continue
            values = default_values(param)
            if values is not None:
                swept[name] = values
    both = sorted(set(swept) & set(fixed))
    if both:
        raise UserError(f"parameter {both[0]} is given with both --grid and --param; keep one")
    if not swept:
        raise UserError(f"strategy {cls.strategy_name()} has no parameter with a range to sweep; "
                        "give one with --grid name=start:stop:step")
    order = [name for name in params if name in swept]
    fixed_values = {name: params[name].check(value) for name, value in fixed.items()}
    for name, param in params.items():
        if name not in swept and name not in fixed_values:
            fixed_values[name] = param.default
    grid = Grid(tuple(order), tuple(swept[n] for n in order), fixed_values, tuple(params))
    return constrain(cls, grid)


def has_constraints(cls: type[Strategy]) -> bool:
    """Whether the strategy declares constraints between its parameters (overrides ``valid``)."""
    return getattr(cls, "valid", Strategy.valid) is not Strategy.valid


def is_valid(cls: type[Strategy], params: dict[str, Any]) -> bool:
    """The strategy's ``valid()`` for these parameter values."""
    return bool(cls(**params).valid())


def constrain(cls: type[Strategy], grid: Grid) -> Grid:
    """The grid without the combinations the strategy's ``valid()`` refuses (unchanged when it has none)."""
    if not has_constraints(cls):
        return grid
    keep = tuple(k for k in range(grid.full_size()) if is_valid(cls, grid.combo(k)))
    if not keep:
        raise UserError(f"no combination of the grid passes {cls.strategy_name()}.valid(); widen the grid")
    return replace(grid, keep=keep)


def parse_memory(text: str) -> int:
    """``2GB`` -> 2,000,000,000 bytes; ``512MiB`` -> 536,870,912. Units: B, KB, MB, GB, TB and KiB..TiB."""
    match = _MEMORY.match(text or "")
    unit = (match.group(2) or "").lower() if match else ""
    if not match or unit not in _UNITS:
        raise UserError(f"--memory {text!r} is not a size; write e.g. 2GB, 512MB or 1.5GiB")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise UserError(f"--memory {text!r} must be positive")
    return value


def iter_combos(grid: Grid):
    """All combinations of the full product in grid order (for small grids and tests)."""
    for items in itertools.product(*grid.values):
        params = dict(grid.fixed)
        params.update(zip(grid.names, items, strict=True))
        yield grid._ordered(params)

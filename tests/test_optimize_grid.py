"""Grid specs (``--grid``), default grids from Param ranges, and ``--memory`` sizes."""

from __future__ import annotations

import itertools

import pytest

from systrade import Param, Signals, Strategy
from systrade.errors import UserError
from systrade.optimize.grid import build_grid, default_values, iter_combos, parse_grid_spec, parse_memory


class Demo(Strategy):
    fast = Param(10, low=2, high=100, step=1)
    slow = Param(30, low=5, high=400, step=5)
    width = Param(2.0, low=0.5, high=4.0, step=0.25)
    mode = Param("a", choices=["a", "b"])
    free = Param(1.5)  # no range: never swept by default

    def signals(self, data):
        return Signals(entries=data["close"] > data["open"])


def test_ranges_include_both_ends() -> None:
    name, values = parse_grid_spec("fast=5:40:1", Demo.params())
    assert name == "fast" and len(values) == 36 and values[0] == 5 and values[-1] == 40
    assert parse_grid_spec("slow=10:55:5", Demo.params())[1] == tuple(range(10, 56, 5))
    assert parse_grid_spec("slow=10:12:5", Demo.params())[1] == (10,)  # stop not on a step: not included


def test_float_ranges_are_exact_decimal_steps() -> None:
    _, values = parse_grid_spec("width=0.5:2:0.25", Demo.params())
    assert values == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    _, values = parse_grid_spec("width=0.7:0.9:0.1", Demo.params())
    assert values == (0.7, 0.8, 0.9)  # 0.7 + 2 * 0.1 in floats is 0.8999999999999999


def test_lists_are_typed_checked_and_deduplicated() -> None:
    assert parse_grid_spec("mode=b,a,b", Demo.params())[1] == ("b", "a")
    assert parse_grid_spec("fast=7", Demo.params())[1] == (7,)
    assert parse_grid_spec("width=1,1.5", Demo.params())[1] == (1.0, 1.5)


@pytest.mark.parametrize("spec, words", [
    ("fast", "name=start:stop:step"),
    ("nope=1:2:1", "no parameter 'nope'"),
    ("fast=1:40:1", "below its low bound"),
    ("fast=5:40:0", "step must be positive"),
    ("fast=40:5:1", "stop is below start"),
    ("fast=5:x:1", "not a number"),
    ("fast=5:10", "start:stop:step"),
    ("fast=5.5:10:1", "integer parameter"),
    ("mode=c", "not allowed"),
    ("mode=a:b:c", "numeric parameter"),
    ("fast=5,,6", "empty value"),
])
def test_bad_specs_name_the_problem(spec: str, words: str) -> None:
    with pytest.raises(UserError, match=words):
        parse_grid_spec(spec, Demo.params())


def test_default_grid_comes_from_param_ranges() -> None:
    grid = build_grid(Demo, None)
    assert grid.names == ("fast", "slow", "width", "mode")
    assert len(grid.values[0]) == 99 and len(grid.values[1]) == 80 and len(grid.values[2]) == 15
    assert grid.values[3] == ("a", "b")
    assert grid.fixed == {"free": 1.5}
    assert len(grid) == 99 * 80 * 15 * 2
    assert default_values(Demo.params()["free"]) is None


def test_explicit_grid_sweeps_only_what_it_names_and_keeps_param_overrides() -> None:
    grid = build_grid(Demo, ["slow=10:20:5", "fast=3,4"], {"width": "1.5"})
    assert grid.names == ("fast", "slow")  # declaration order, whatever the command-line order
    assert grid.fixed == {"width": 1.5, "mode": "a", "free": 1.5}
    combos = [grid.combo(k) for k in range(len(grid))]
    assert combos == list(iter_combos(grid))
    assert [(c["fast"], c["slow"]) for c in combos] == list(itertools.product((3, 4), (10, 15, 20)))
    assert list(combos[0]) == ["fast", "slow", "width", "mode", "free"]  # params in declaration order
    with pytest.raises(UserError, match="both --grid and --param"):
        build_grid(Demo, ["fast=3,4"], {"fast": "5"})
    with pytest.raises(UserError, match="twice"):
        build_grid(Demo, ["fast=3,4", "fast=5"])


@pytest.mark.parametrize("text, size", [("2GB", 2 * 10**9), ("512MB", 512 * 10**6), ("1.5GiB", int(1.5 * 2**30)),
                                        ("300mib", 300 * 2**20), ("1000", 1000), ("2 gb", 2 * 10**9)])
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "2XB", "-1GB", "0"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(UserError, match="--memory"):
        parse_memory(text)

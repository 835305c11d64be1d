"""systrade: write a strategy once, backtest it, search its parameters, paper-trade it.

The public API is the strategy contract::

    from systrade import Strategy, Param, Signals, crossed_above, crossed_below

The names are loaded on first use, so commands that never touch a strategy (``paper status``,
``--help``) do not pay for importing pandas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Strategy", "Param", "Signals", "crossed_above", "crossed_below", "crossings", "indicator"]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from the installed package's metadata, so it never drifts from pyproject.toml
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("systrade")
        except PackageNotFoundError:  # a source tree on sys.path that was never installed
            return "unknown"
    if name in __all__:
        from systrade import strategy

        return getattr(strategy, name)
    raise AttributeError(f"module 'systrade' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

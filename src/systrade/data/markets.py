"""A market's trading rules saved beside its candles: ``<dir>/<exchange>/<BASE>_<QUOTE>.market.json``.

`data download` and `data update` write what the exchange says about the market (amount step, price tick,
minimum amount and cost, taker and maker fees), so a backtest of a stored series sizes orders as the
exchange would accept them, without asking the exchange again. The file is small JSON, written atomically.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from systrade.data.store import symbol_to_stem
from systrade.errors import UserError
from systrade.fsutil import atomic_write_text

RULE_FIELDS = ("lot", "tick", "min_amount", "min_cost", "taker_fee", "maker_fee", "cost_step")


def precision_step(client: Any, digits: Any) -> float | None:
    """A ccxt market precision as a step (0.001), whatever the exchange's precision mode; None if unknown."""
    import ccxt

    if digits is None:
        return None
    mode = getattr(client, "precisionMode", None)
    if mode == ccxt.TICK_SIZE:
        return float(digits)
    if mode == ccxt.DECIMAL_PLACES:
        return 10.0 ** -float(digits)
    return None


def market_path(data_dir: str | Path, exchange: str, symbol: str) -> Path:
    return Path(data_dir) / exchange / f"{symbol_to_stem(symbol)}.market.json"


def market_record(client: Any, exchange: str, symbol: str, extra: dict[str, float] | None = None) -> dict[str, Any]:
    """The rules of ``symbol`` from a ccxt client whose markets are loaded, as saved in the market file; ``extra``
    (rules ccxt does not carry, e.g. Upbit's minimum and ticks, and the user's overrides) win."""
    market = client.market(symbol)
    limits = market.get("limits") or {}
    precision = market.get("precision") or {}

    def number(value: Any) -> float | None:
        return float(value) if value is not None and math.isfinite(float(value)) else None

    return {
        "exchange": exchange, "symbol": symbol, "base": market.get("base"), "quote": market.get("quote"),
        "lot": precision_step(client, precision.get("amount")),
        "tick": precision_step(client, precision.get("price")),
        "min_amount": number((limits.get("amount") or {}).get("min")),
        "min_cost": number((limits.get("cost") or {}).get("min")),
        "taker_fee": number(market.get("taker")), "maker_fee": number(market.get("maker")),
        **(extra or {}),
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_market(data_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write (or refresh) the market file of ``record``'s exchange and symbol."""
    path = market_path(data_dir, record["exchange"], record["symbol"])
    return atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def load_market(data_dir: str | Path, exchange: str, symbol: str) -> dict[str, Any] | None:
    """The saved rules of a stored market, or None when the series was imported (no market file)."""
    path = market_path(data_dir, exchange, symbol)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        rules = {name: record.get(name) for name in RULE_FIELDS}
        for name, value in rules.items():
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r}")
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"market file {path} is not valid ({exc}); refresh it with `systrade data update` or "
                        "delete it") from exc
    return {**record, **rules}

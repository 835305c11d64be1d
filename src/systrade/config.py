"""``systrade.toml``: validated settings with defaults; secrets come only from the environment.

Where the file is found: ``--config PATH``, else ``$SYSTRADE_CONFIG``, else ``./systrade.toml``,
else built-in defaults. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from systrade.errors import UserError

DEFAULT_FILE = "systrade.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Strict):
    dir: str = "data"


class StrategySettings(_Strict):
    dir: str = "strategies"


class BacktestSettings(_Strict):
    cash: float = Field(10_000.0, gt=0)
    fees: float = Field(0.001, ge=0, lt=1)  # 0.1% per side: a free backtest flatters every strategy
    slippage: float = Field(0.0, ge=0, lt=1)
    year_days: float = Field(365.0, gt=0, le=366)


class NetworkSettings(_Strict):
    """Retry policy for exchange calls (see systrade.exchange.RetryPolicy)."""

    retries: int = Field(5, ge=0, le=50)
    backoff_seconds: float = Field(1.0, ge=0)
    rate_limit_backoff_seconds: float = Field(5.0, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)


class BotSettings(_Strict):
    """One paper-trading bot: a strategy on one market, with the backtest's sizing options."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    strategy: str
    params: dict[str, Any] = {}
    exchange: str
    symbol: str
    timeframe: str
    size: float | Literal["all"] = "all"
    size_type: Literal["percent", "amount", "value"] = "percent"
    direction: Literal["long", "short", "both"] | None = None
    slippage: float = Field(0.0, ge=0, lt=1)
    fees: float | None = Field(None, ge=0, lt=1)  # None: the market's taker fee
    max_position: float | None = Field(None, gt=0, le=1)  # fraction of account equity
    daily_loss_limit: float | None = Field(None, gt=0, lt=1)  # fraction of equity at the day's start
    candles: int | None = Field(None, ge=2, le=5000)  # history per tick (default: warmup + 250)


class PaperSettings(_Strict):
    database: str = "sqlite:///data/paper.sqlite"
    balances: dict[str, float] = {"USDT": 10_000.0}
    mode: Literal["paper", "sandbox"] = "paper"
    tick_delay_seconds: int = Field(3, ge=0, le=300)
    bots: list[BotSettings] = []

    @field_validator("bots")
    @classmethod
    def _unique_names(cls, bots: list[BotSettings]) -> list[BotSettings]:
        names = [b.name for b in bots]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"bot names must be unique; repeated: {', '.join(duplicated)}")
        return bots


class Settings(_Strict):
    data: DataSettings = DataSettings()
    network: NetworkSettings = NetworkSettings()
    paper: PaperSettings = PaperSettings()
    strategies: StrategySettings = StrategySettings()
    backtest: BacktestSettings = BacktestSettings()
    exchanges: dict[str, dict[str, Any]] = {}
    source: str | None = None


def config_path(explicit: str | None = None) -> Path | None:
    """The config file in effect, or None for built-in defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"config file {path} does not exist; check --config")
        return path
    env = os.environ.get("SYSTRADE_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise UserError(f"config file {path} (from SYSTRADE_CONFIG) does not exist; fix or unset it")
        return path
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_settings(explicit: str | None = None) -> Settings:
    """Read and validate the config; raise UserError naming the file, key and fix."""
    path = config_path(explicit)
    if path is None:
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}; fix the syntax") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise UserError(f"config file {path}: {where}: {message}; see the README's configuration section") from exc
    settings.source = str(path)
    return settings


def secret_env_names(exchange_id: str) -> dict[str, str]:
    """Environment variable names holding an exchange's credentials (never the values)."""
    prefix = f"SYSTRADE_{exchange_id.upper()}_"
    return {"apiKey": prefix + "API_KEY", "secret": prefix + "SECRET", "password": prefix + "PASSWORD"}

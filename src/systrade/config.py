"""``systrade.toml``: validated settings with defaults; secrets come only from the environment.

Where the file is found: ``--config PATH``, else ``$SYSTRADE_CONFIG``, else ``./systrade.toml``,
else built-in defaults. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from systrade.errors import UserError

DEFAULT_FILE = "systrade.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Strict):
    dir: str = "data"
    max_file_mb: float = Field(1024.0, gt=0)  # a --data/import file above this is refused before it is read


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


def quote_of(symbol: str) -> str | None:
    """The quote currency of a unified symbol (``BTC/USDT`` and ``BTC/USDT:USDT`` -> ``USDT``), else None."""
    if "/" not in symbol:
        return None
    return symbol.split("/", 1)[1].split(":", 1)[0] or None


def allocate_capital(bots: list[BotSettings], initial: dict[str, float],
                     assigned: dict[str, float] | None = None) -> dict[str, float]:
    """Each bot's capital in its quote currency, so that bots sharing a currency never size from the same cash.

    A bot gets its ``capital``, else ``capital_fraction`` of the currency's starting balance (``initial``), else
    what the ledger ``assigned`` it before, else an equal share of what the others leave. Raises ValueError
    naming the bots and amounts when a currency's allocations exceed its starting balance.
    """
    assigned = assigned or {}
    capitals: dict[str, float] = {}
    by_quote: dict[str, list[BotSettings]] = {}
    for bot in bots:
        if bot.quote is not None:
            by_quote.setdefault(bot.quote, []).append(bot)
    for quote, group in by_quote.items():
        balance = float(initial.get(quote, 0.0))
        sharing = []
        for bot in group:
            if bot.capital is not None:
                capitals[bot.name] = float(bot.capital)
            elif bot.capital_fraction is not None:
                capitals[bot.name] = bot.capital_fraction * balance
            elif assigned.get(bot.name) is not None:
                capitals[bot.name] = float(assigned[bot.name])
            else:
                sharing.append(bot)
        fixed = sum(capitals.get(b.name, 0.0) for b in group)
        if sharing:
            share = (balance - fixed) / len(sharing)
            if share <= 0:
                names = ", ".join(b.name for b in sharing)
                raise ValueError(f"no {quote} left for bots {names}: the starting {quote} balance is {balance:,.8g} "
                                 f"and the other bots take {fixed:,.8g}; add {quote} to [paper] balances or give "
                                 "the bots capital")
            capitals.update({b.name: share for b in sharing})
        total = sum(capitals[b.name] for b in group)
        if total > balance * (1 + 1e-9):
            amounts = ", ".join(f"{b.name} {capitals[b.name]:,.8g}" for b in group)
            raise ValueError(f"bots on {quote} are allocated {total:,.8g} {quote} ({amounts}) but the starting "
                             f"{quote} balance is {balance:,.8g}; lower capital/capital_fraction or raise the balance")
    return capitals


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
    capital: float | None = Field(None, gt=0)  # quote currency the bot trades with
    capital_fraction: float | None = Field(None, gt=0, le=1)  # of the quote currency's starting balance
    max_position: float | None = Field(None, gt=0, le=1)  # fraction of the bot's equity
    daily_loss_limit: float | None = Field(None, gt=0, lt=1)  # fraction of the bot's equity at the day's start
    candles: int | None = Field(None, ge=2, le=5000)  # history per tick (default: warmup + 250)

    @model_validator(mode="after")
    def _one_capital(self) -> BotSettings:
        if self.capital is not None and self.capital_fraction is not None:
            raise ValueError(f"bot {self.name} sets both capital and capital_fraction; keep one of them")
        return self

    @property
    def quote(self) -> str | None:
        """The quote currency of the bot's symbol (``BTC/USDT`` -> ``USDT``), None for a symbol without one."""
        return quote_of(self.symbol)


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

    @model_validator(mode="after")
    def _capital_fits(self) -> PaperSettings:
        allocate_capital(self.bots, self.balances)
        return self


class Settings(_Strict):
    data: DataSettings = DataSettings()
    network: NetworkSettings = NetworkSettings()
    paper: PaperSettings = PaperSettings()
    strategies: StrategySettings = StrategySettings()
    backtest: BacktestSettings = BacktestSettings()
    exchanges: dict[str, dict[str, Any]] = {}
    source: str | None = None

    @field_validator("exchanges")
    @classmethod
    def _no_secrets(cls, exchanges: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Credentials belong in the environment, never in a file that gets copied, shared and committed."""
        for exchange_id, table in exchanges.items():
            found = _secret_keys(table)
            if found:
                names = ", ".join(secret_env_names(exchange_id).values())
                raise ValueError(f"{', '.join(found)} must not be written in the config; remove it and set the "
                                 f"environment variables {names} instead")
        return exchanges


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
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}; fix the syntax") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} on line {line}); "
                        "save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"config file {path} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise UserError(f"config file {path}: {where}: {message}; see the README's configuration section") from exc
    settings.source = str(path)
    return settings


SECRET_KEYS = {"apikey", "secret", "password", "uid", "login", "privatekey", "walletaddress", "token", "twofa",
               "passphrase", "appkey", "appsecret", "api_key", "api_secret", "secret_key", "access_token"}


def _secret_keys(table: Any, path: str = "") -> list[str]:
    """The dotted names of credential keys anywhere inside a config table."""
    found = []
    if isinstance(table, dict):
        for key, value in table.items():
            name = f"{path}.{key}" if path else str(key)
            if str(key).replace("-", "").lower() in SECRET_KEYS or str(key).lower() in SECRET_KEYS:
                found.append(name)
            found.extend(_secret_keys(value, name))
    return found


def secret_env_names(exchange_id: str) -> dict[str, str]:
    """Environment variable names holding an exchange's credentials (never the values)."""
    prefix = f"SYSTRADE_{exchange_id.upper()}_"
    return {"apiKey": prefix + "API_KEY", "secret": prefix + "SECRET", "password": prefix + "PASSWORD"}

"""``systrade.toml``: validated settings with defaults; secrets come only from the environment.

Where the file is found: ``--config PATH``, else ``$SYSTRADE_CONFIG``, else ``./systrade.toml``,
else built-in defaults. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import math
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
    """Candles: where they are stored and how large a file may be read."""

    dir: str = Field("data", description="the candle store: <dir>/<exchange>/<SYMBOL>-<timeframe>.parquet")
    max_file_mb: float = Field(1024.0, gt=0, description="a --data or imported file above this many MB is refused "
                               "before it is read")


class StrategySettings(_Strict):
    """Where the project's strategies are found by name (bundled and installed ones are found anywhere)."""

    dir: str = Field("strategies", description="the project's strategy folder; its strategies win over bundled ones "
                     "of the same name")
    dirs: list[str] | None = Field(None, description="several folders instead of dir, searched in order (the first "
                                   "found of a name wins)", examples=[["strategies", "../shared/strategies"]])

    @model_validator(mode="after")
    def _dir_or_dirs(self) -> StrategySettings:
        if self.dirs is not None and "dir" in self.model_fields_set:
            raise ValueError("set dir (one folder) or dirs (several), not both")
        return self

    @property
    def folders(self) -> list[str]:
        """The project's strategy folders in search order: ``dirs`` when given, else ``dir``."""
        return list(self.dirs) if self.dirs is not None else [self.dir]


class BacktestSettings(_Strict):
    """Defaults of backtest, optimize, walkforward, check and paper replay (their options win)."""

    cash: float = Field(10_000.0, gt=0, description="starting cash, in the quote currency")
    fees: float = Field(0.001, ge=0, lt=1, description="fee per fill, a fraction of traded value (0.001 = 0.1%: a "
                        "free backtest flatters every strategy)")
    slippage: float = Field(0.0, ge=0, lt=1, description="adverse price move per fill, a fraction of the price")
    year_days: float | None = Field(None, gt=0, le=366, examples=[252.0], description="days per year for "
                                    "annualising; unset: 252 for daily candles without weekends (stocks), else 365")


class NetworkSettings(_Strict):
    """Retry policy for exchange calls (see systrade.exchange.RetryPolicy)."""

    retries: int = Field(5, ge=0, le=50, description="retries of an exchange call after a network error or outage")
    backoff_seconds: float = Field(1.0, ge=0, description="wait before the first retry; doubles per attempt")
    rate_limit_backoff_seconds: float = Field(5.0, ge=0, description="wait after a rate-limit answer "
                                              "(DDoSProtection, RateLimitExceeded)")
    max_backoff_seconds: float = Field(60.0, ge=0, description="longest wait between two retries")


MARKET_RULES = "market_rules"  # [exchanges.<id>.market_rules]: systrade's overrides, never passed to ccxt
MARKET_RULE_KEYS = ("min_cost", "min_amount", "taker_fee", "maker_fee", "tick", "lot", "cost_step")
BROKER_QUOTES = {"alpaca": "USD", "kis": "KRW"}


def known_zone(zone: str) -> str:
    """``zone`` when it is an IANA time zone name, else a ValueError saying what to write."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as Asia/Seoul or UTC") from None
    return zone  # the currency a stock broker's symbols trade in


def bot_quote(exchange: str, symbol: str) -> str | None:
    """The currency a bot on ``exchange`` trading ``symbol`` counts its money in (a stock broker's for its symbols,
    else the symbol's quote)."""
    return BROKER_QUOTES.get(exchange) or quote_of(symbol)


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

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", examples=["btc-sma"],
                      description="the bot's unique name (letters, digits, _ . -)")
    strategy: str = Field(examples=["sma_cross"], description="strategy name or path, as for backtest")
    params: dict[str, Any] = Field({}, description="parameter values, e.g. { fast = 10, slow = 30 }")
    exchange: str = Field(examples=["binance"], description='a ccxt exchange id, or a stock broker: "alpaca" (US) '
                          'or "kis" (Korea Investment & Securities)')
    symbol: str = Field(examples=["BTC/USDT"], description="the market traded (alpaca: a ticker such as AAPL; kis: "
                        "a 6-digit KRX code such as 005930)")
    symbols: list[str] | None = Field(None, min_length=2, examples=[["BTC/USDT", "ETH/USDT"]], description="instead "
                                      "of symbol: the markets a strategy trading several symbols together trades "
                                      "with one capital (its own `symbols` list)")
    mode: Literal["paper", "sandbox"] | None = Field(None, examples=["sandbox"], description='"paper" (simulated '
                                                     'fills) or "sandbox" (real orders on the venue\'s paper '
                                                     "account); default: [paper] mode")
    timeframe: str = Field(examples=["1h"], description="candle timeframe: one tick per closed candle")
    size: float | Literal["all"] = Field("all", description='"all" (all available cash) or a number (see size_type)')
    size_type: Literal["percent", "amount", "value"] = Field("percent", description="percent | amount | value "
                                                             '(ignored for "all")')
    direction: Literal["long", "short", "both"] | None = Field(None, examples=["long"], description="long | short "
                                                               "| both (default: the strategy's)")
    slippage: float = Field(0.0, ge=0, lt=1, description="extra adverse slippage on top of the order book")
    stop_loss: float | None = Field(None, gt=0, examples=[0.05], description="stop loss, a fraction of the entry "
                                    "price (default: the strategy's)")
    take_profit: float | None = Field(None, gt=0, examples=[0.1], description="take profit, a fraction of the "
                                      "entry price (default: the strategy's)")
    fees: float | None = Field(None, ge=0, lt=1, examples=[0.001], description="fee per fill, a fraction "
                               "(default: the market's taker fee)")
    capital: float | None = Field(None, gt=0, examples=[5000.0], description="the bot's own money, in the "
                                  "symbol's quote currency")
    capital_fraction: float | None = Field(None, gt=0, le=1, examples=[0.5], description="or: this fraction of "
                                           "the quote currency's starting balance (not both)")
    max_position: float | None = Field(None, gt=0, le=1, examples=[0.5], description="at most this fraction of "
                                       "the bot's equity in the position")
    daily_loss_limit: float | None = Field(None, gt=0, lt=1, examples=[0.05], description="halt the bot after "
                                           "losing this fraction of its equity in a UTC day")
    candles: int | None = Field(None, ge=2, le=5000, examples=[300], description="history per tick (default: the "
                                "strategy's warmup + 250)")

    @model_validator(mode="before")
    @classmethod
    def _symbol_or_symbols(cls, data: Any) -> Any:
        """``symbols = [...]`` (several traded together) or ``symbol = "..."``, never both; ``symbol`` is then the
        first of them (its quote currency is the bot's)."""
        if isinstance(data, dict) and data.get("symbols") is not None:
            name = data.get("name", "?")
            if data.get("symbol") is not None:
                raise ValueError(f"bot {name} sets both symbol and symbols; keep symbols for a strategy trading "
                                 "several symbols together, else symbol")
            listed = data["symbols"]
            if isinstance(listed, list) and listed and all(isinstance(x, str) for x in listed):
                if len(set(listed)) != len(listed):
                    raise ValueError(f"bot {name} lists a symbol twice in symbols; list each once")
                return {**data, "symbol": listed[0]}
        return data

    @model_validator(mode="after")
    def _one_quote(self) -> BotSettings:
        if self.symbols:
            quotes = {bot_quote(self.exchange, symbol) for symbol in self.symbols}
            if len(quotes) > 1:
                raise ValueError(f"bot {self.name} trades {', '.join(self.symbols)}, priced in different currencies; "
                                 "one capital needs symbols of one quote currency")
            for option in ("max_position", "daily_loss_limit"):
                if getattr(self, option) is not None:
                    raise ValueError(f"bot {self.name}: {option} is not available for a bot trading several symbols "
                                     "yet; remove it")
        return self

    @property
    def traded(self) -> list[str]:
        """Every symbol the bot trades: its ``symbols``, else its one ``symbol``."""
        return list(self.symbols) if self.symbols else [self.symbol]

    @property
    def market_text(self) -> str:
        """The symbols as the ledger and `paper status` name the bot's market."""
        return ", ".join(self.traded)

    @model_validator(mode="after")
    def _one_capital(self) -> BotSettings:
        if self.capital is not None and self.capital_fraction is not None:
            raise ValueError(f"bot {self.name} sets both capital and capital_fraction; keep one of them")
        return self

    @property
    def quote(self) -> str | None:
        """The quote currency of the bot's symbol (``BTC/USDT`` -> ``USDT``; a stock broker's currency for its
        symbols), None for a symbol without one."""
        return bot_quote(self.exchange, self.symbol)


def check_bot_symbols(bot, cls) -> None:
    """A strategy trading several symbols together runs in a bot listing exactly them (``symbols = [...]``); a
    one-symbol strategy in a bot with one ``symbol``."""
    wanted = list(cls.symbols)
    if wanted and bot.symbols is None:
        raise UserError(f"bot {bot.name}: strategy {cls.strategy_name()} trades {', '.join(wanted)} together; give the "
                        f"bot symbols = {_toml_list(wanted)} instead of symbol")
    if not wanted and bot.symbols is not None:
        raise UserError(f"bot {bot.name}: strategy {cls.strategy_name()} trades one symbol; give the bot symbol = "
                        f"\"{bot.symbols[0]}\" instead of symbols")
    if wanted and [s.upper() for s in bot.symbols] != [s.upper() for s in wanted]:
        raise UserError(f"bot {bot.name}: symbols = {_toml_list(bot.symbols)} differs from the list strategy "
                        f"{cls.strategy_name()} trades; give symbols = {_toml_list(wanted)}")


def _toml_list(symbols: list[str]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in symbols) + "]"


class PaperSettings(_Strict):
    """Paper trading: the ledger, the simulated account and the bots (`systrade paper run`)."""

    database: str = Field("sqlite:///data/paper.sqlite", description="the ledger: any SQLAlchemy URL (SQLite in "
                          "WAL mode by default)")
    balances: dict[str, float] = Field({"USDT": 10_000.0}, description="starting paper balances")
    mode: Literal["paper", "sandbox"] = Field("paper", description='"paper", or "sandbox": real orders on the '
                                              "exchange's testnet")
    tick_delay_seconds: int = Field(3, ge=0, le=300, description="run each tick this long after the candle closes")
    timezone: str = Field("UTC", examples=["Asia/Seoul"], description="the time zone of the times `paper status`, "
                          "`trades` and `orders` print (JSON and the ledger stay in UTC), e.g. Asia/Seoul for KST")
    bots: list[BotSettings] = Field([], description="one table per bot")

    def mode_of(self, bot: BotSettings) -> str:
        """A bot's mode: its own, else the section's."""
        return bot.mode or self.mode

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        return known_zone(zone)

    @field_validator("balances")
    @classmethod
    def _real_balances(cls, balances: dict[str, float]) -> dict[str, float]:
        for asset, amount in balances.items():
            if not math.isfinite(amount) or amount < 0:
                raise ValueError(f"the {asset} balance {amount:g} is not a finite amount >= 0; give the {asset} "
                                 "the paper account starts with, e.g. 10000.0")
        return balances

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
        for bot in self.bots:  # `eth/btc` quotes in "btc", which no balance is: say why, not "no btc left"
            same = [asset for asset in self.balances if bot.quote and asset.upper() == bot.quote.upper()]
            if bot.quote not in self.balances and same:
                raise ValueError(f"bot {bot.name}: symbol {bot.symbol!r} quotes in {bot.quote!r} but the balance is "
                                 f"{same[0]!r} (currency codes are case-sensitive); write the symbol as the exchange "
                                 f"does, e.g. {bot.symbol.upper()!r}")
        allocate_capital(self.bots, self.balances)
        return self


class AlpacaSettings(_Strict):
    """Alpaca (US stocks and ETFs): the default URLs are its paper account and its market data."""

    trading_url: str = Field("https://paper-api.alpaca.markets", description="the trading API (paper by default; "
                             "only a changed URL reaches a real-money account)")
    data_url: str = Field("https://data.alpaca.markets", description="the market data API")
    feed: str = Field("iex", examples=["iex", "sip"], description="the market data feed named in every request "
                      "(iex is free; sip needs a subscription)")
    fees: float = Field(0.0, ge=0, lt=1, description="fee per fill, a fraction of traded value (Alpaca charges no "
                        "commission on stocks)")
    sell_fees: float = Field(0.0, ge=0, lt=1, description="extra charge on sells, a fraction of traded value "
                             "(regulatory fees, e.g. 0.0000278)")
    timeout: float = Field(30.0, gt=0, description="seconds to wait for one answer")


class KisSettings(_Strict):
    """Korea Investment & Securities (KRX stocks): the default URL is its mock-trading (모의투자) domain."""

    url: str = Field("https://openapivts.koreainvestment.com:29443", description="the Open API host (mock "
                     "trading by default; the real-money host is https://openapi.koreainvestment.com:9443)")
    fees: float = Field(0.00015, ge=0, lt=1, description="brokerage commission per fill, a fraction of traded value")
    sell_tax: float = Field(0.0015, ge=0, lt=1, description="securities transaction tax (and rural tax) on sells, a "
                            "fraction of traded value; check the year's rate for your market")
    timeout: float = Field(30.0, gt=0, description="seconds to wait for one answer")
    min_interval_seconds: float | None = Field(None, ge=0, le=10, examples=[0.5], description="pause between two "
                                               "requests (KIS limits requests per second; default 0.5 on the mock "
                                               "host, 0.06 on the real one)")


class BrokersSettings(_Strict):
    """Stock brokers; keys come from the environment only (SYSTRADE_ALPACA_API_KEY, SYSTRADE_ALPACA_SECRET,
    SYSTRADE_KIS_APP_KEY, SYSTRADE_KIS_APP_SECRET, SYSTRADE_KIS_ACCOUNT)."""

    alpaca: AlpacaSettings = AlpacaSettings()
    kis: KisSettings = KisSettings()


class TelegramSettings(_Strict):
    """Messages to one Telegram chat; the bot token comes from SYSTRADE_TELEGRAM_TOKEN only."""

    chat_id: str = Field(examples=["123456"], description="the chat the bot writes to (and takes commands from)")
    api_url: str = Field("https://api.telegram.org", description="the Bot API's address")


class WebhookSettings(_Strict):
    """A JSON POST of every notification."""

    url: str = Field(examples=["https://example.org/hook"], description="where to POST")
    headers: dict[str, str] = Field({}, description="extra HTTP headers, e.g. { X-Source = \"systrade\" }")


NOTIFY_EVENTS = ("fill", "rejected", "halt", "resume", "error", "start", "stop", "daily_summary")


class NotifySettings(_Strict):
    """Notifications of what the daemon does (Telegram, webhooks)."""

    events: list[Literal["fill", "rejected", "halt", "resume", "error", "start", "stop", "daily_summary"]] = Field(
        list(NOTIFY_EVENTS), description="which events are sent")
    daily_summary_at: str = Field("09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time of the "
                                  "daily summary (HH:MM)")
    timezone: str | None = Field(None, examples=["Asia/Seoul"], description="the zone of daily_summary_at "
                                 "(default: the machine's)")
    telegram: TelegramSettings | None = Field(None, examples=[{"chat_id": "123456"}], description="a Telegram "
                                              "chat ([notify.telegram])")
    webhooks: list[WebhookSettings] = Field([], description="webhooks ([[notify.webhooks]])")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        return None if zone is None else known_zone(zone)


class Settings(_Strict):
    data: DataSettings = DataSettings()
    network: NetworkSettings = NetworkSettings()
    paper: PaperSettings = PaperSettings()
    strategies: StrategySettings = StrategySettings()
    backtest: BacktestSettings = BacktestSettings()
    brokers: BrokersSettings = BrokersSettings()
    notify: NotifySettings = NotifySettings()
    exchanges: dict[str, dict[str, Any]] = Field({}, examples=[{"binance": {"timeout": 10000}}], description="per "
                                                 "ccxt exchange id, deep-merged into its client's config (urls, "
                                                 "options, timeout); never keys or secrets")
    source: str | None = None  # the file these settings were read from (set by load_settings, not a setting)

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
            rules = table.get(MARKET_RULES, {})
            if not isinstance(rules, dict):
                raise ValueError(f"[exchanges.{exchange_id}.{MARKET_RULES}] must be a table, e.g. min_cost = 5000")
            for key, value in rules.items():
                if key not in MARKET_RULE_KEYS:
                    raise ValueError(f"exchanges.{exchange_id}.{MARKET_RULES}.{key}: unknown market rule; use "
                                     f"{', '.join(MARKET_RULE_KEYS)}")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                    raise ValueError(f"exchanges.{exchange_id}.{MARKET_RULES}.{key} = {value!r} is not a number >= "
                                     "0")
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

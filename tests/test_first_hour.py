"""A new user's first hour: what ships inside the package works from any folder, `systrade init` starts a project,
`--version`, help text, and where each strategy comes from. Every command runs as a real `systrade` subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pandas as pd
from conftest import REPO, systrade_exe, tree
from pydantic import BaseModel

BUNDLED = ("sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend",
           "daily_filtered_trend")
PACKAGE = REPO / "src" / "systrade"


def run(*args: str, cwd: Path, env: dict | None = None, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    """`systrade ARGS` in ``cwd`` with no config from the environment (a user's fresh shell)."""
    full_env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run([*(exe or [systrade_exe()]), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300)


def strategy_rows(stdout: str) -> dict[str, dict[str, str]]:
    """`strategies list`'s table as name -> {summary, from, source}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0] and cells[0] != "name":
            rows[cells[0]] = {"summary": cells[1], "from": cells[2], "source": cells[3]}
    return rows


def strict_crosses_up(close: pd.Series, fast: int, slow: int) -> int:
    """sma_cross's entries that have a next bar to fill at, counted with plain pandas."""
    f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
    return int(((f.shift(1) < s.shift(1)) & (f > s)).iloc[:-1].sum())


# ---------------------------------------------------------------- bundled strategies and sample


def test_the_bundled_sample_is_the_generators_output() -> None:
    from systrade.data.sample import generate_sample

    shipped = pd.read_parquet(PACKAGE / "bundled" / "sample" / "SAMPLE_USDT-1h.parquet")
    pd.testing.assert_frame_equal(shipped, generate_sample(), check_exact=False, rtol=1e-9, check_freq=False)
    assert shipped.attrs["synthetic"] is True


def test_an_empty_folder_backtests_a_bundled_strategy_and_writes_nothing(tmp_path: Path) -> None:
    result = run("backtest", "sma_cross", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synthetic sample data" in " ".join(result.stdout.split())
    assert tree(tmp_path) == set()  # read-only: no sample, no store, no config written into the folder
    listing = run("strategies", "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = strategy_rows(listing.stdout)
    assert set(BUNDLED) <= set(rows)
    for name in BUNDLED:
        assert rows[name]["from"] == "bundled" and rows[name]["source"].endswith(f"{name}.py")
    assert run("strategies", "show", "rsi_reversion", cwd=tmp_path).returncode == 0
    assert tree(tmp_path) == set()

    measured = run("backtest", "sma_cross", "--json", "out.json", cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    shipped = pd.read_parquet(PACKAGE / "bundled" / "sample" / "SAMPLE_USDT-1h.parquet")
    assert doc["synthetic"] is True and doc["symbol"] == "SAMPLE/USDT"
    assert pd.Timestamp(doc["start"]) == shipped.index[0] and pd.Timestamp(doc["end"]) == shipped.index[-1]
    assert doc["total_trades"] == strict_crosses_up(shipped["close"], 10, 30) > 10
    assert tree(tmp_path) == {"out.json"}

    asked = run("data", "sample", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert tree(tmp_path) == {"out.json", "data/sample/SAMPLE_USDT-1h.parquet"}


PLUGIN = '''
from systrade import Signals, Strategy


class Plugged(Strategy):
    """Installed as a plugin."""

    def signals(self, data):
        return Signals(entries=data["close"] > 0)


class RsiReversion(Strategy):
    """A plugin's rsi_reversion."""

    def signals(self, data):
        return Signals(entries=data["close"] > 0)
'''


def plugin(site: Path) -> dict[str, str]:
    """A real installed distribution (a dist-info with entry points) on a folder put on PYTHONPATH."""
    site.mkdir()
    (site / "first_hour_plugin.py").write_text(PLUGIN)
    dist = site / "first_hour_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: first-hour-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[systrade.strategies]\nplugged = first_hour_plugin:Plugged\n"
                                           "rsi_reversion = first_hour_plugin:RsiReversion\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}


def never_trades(class_name: str, doc: str | None) -> str:
    docstring = f'    """{doc}"""\n\n' if doc else ""
    return (f"from systrade import Signals, Strategy\n\n\nclass {class_name}(Strategy):\n{docstring}"
            '    def signals(self, data):\n        return Signals(entries=data["close"] < 0)\n')


def test_a_projects_strategy_wins_and_the_list_says_where_each_comes_from(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_text('[strategies]\ndirs = ["mine", "team"]\n')
    for folder in ("mine", "team"):
        (tmp_path / folder).mkdir()
    (tmp_path / "mine" / "sma_cross.py").write_text(never_trades("SmaCross", "Mine: never trades."))
    (tmp_path / "team" / "sma_cross.py").write_text(never_trades("SmaCross", "The team's."))
    (tmp_path / "team" / "team_pick.py").write_text(never_trades("TeamPick", None))
    env = plugin(tmp_path / "site")

    listing = run("strategies", "list", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    rows = strategy_rows(listing.stdout)
    assert rows["sma_cross"] == {"summary": "Mine: never trades.", "from": "project (over project, bundled)",
                                 "source": "mine/sma_cross.py"}
    assert rows["team_pick"] == {"summary": "", "from": "project", "source": "team/team_pick.py"}
    assert rows["plugged"]["from"] == "entry point" and rows["plugged"]["summary"] == "Installed as a plugin."
    assert rows["rsi_reversion"]["from"] == "entry point (over bundled)"
    assert rows["rsi_reversion"]["summary"] == "A plugin's rsi_reversion."
    assert rows["macd_trend"]["from"] == "bundled"
    assert "Base class for strategy plugins" not in listing.stdout  # no docstring: nothing, not the base class's

    shown = run("strategies", "show", "team_pick", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "(no docstring)" in shown.stdout and "Base class" not in shown.stdout

    mine = run("backtest", "sma_cross", "--json", "mine.json", cwd=tmp_path, env=env)
    bundled = run("backtest", "macd_trend", "--json", "bundled.json", cwd=tmp_path, env=env)
    assert mine.returncode == bundled.returncode == 0, mine.stderr + bundled.stderr
    assert json.loads((tmp_path / "mine.json").read_text())["total_trades"] == 0  # the project's, not the bundled
    assert json.loads((tmp_path / "bundled.json").read_text())["total_trades"] > 0


def test_a_strategy_without_a_docstring_is_listed_without_one(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_text('[strategies]\ndir = "mine"\n')
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "quiet.py").write_text(never_trades("Quiet", None))
    (tmp_path / "mine" / "talkative.py").write_text(never_trades("Talkative", "Says what it does."))
    listing = run("strategies", "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    quiet = next(line for line in listing.stdout.splitlines() if "quiet" in line)
    talkative = next(line for line in listing.stdout.splitlines() if "talkative" in line)
    assert [c.strip() for c in quiet.split("│")][2] == ""  # no summary, not the base class's docstring
    assert [c.strip() for c in talkative.split("│")][2] == "Says what it does."
    shown = run("strategies", "show", "quiet", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "(no docstring)" in shown.stdout and "Base class" not in shown.stdout


def test_strategies_dir_and_dirs_are_not_both_set(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_text('[strategies]\ndir = "a"\ndirs = ["b", "c"]\n')
    before = tree(tmp_path)
    result = run("strategies", "list", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "set dir (one folder) or dirs (several), not both" in result.stderr
    assert tree(tmp_path) == before


def test_a_non_editable_build_holds_the_strategies_the_sample_and_the_example(tmp_path: Path) -> None:
    """setuptools' build step (what a wheel or `pip install .` copies) on a copy of the project, then the built
    package runs from an empty folder with nothing of the repository on its path."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = tmp_path / "built"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib",
                    str(built)], cwd=source, check=True, capture_output=True)
    files = {str(p.relative_to(built / "systrade")) for p in (built / "systrade").rglob("*") if p.is_file()}
    assert {f"bundled/strategies/{name}.py" for name in BUNDLED} <= files
    assert {"bundled/sample/SAMPLE_USDT-1h.parquet", "bundled/my_strategy.py"} <= files

    empty = tmp_path / "empty"
    empty.mkdir()
    exe = [sys.executable, "-c", "from systrade.cli import main; main()"]
    env = {"PYTHONPATH": str(built)}
    listing = run("strategies", "list", cwd=empty, env=env, exe=exe)
    assert listing.returncode == 0, listing.stderr
    rows = strategy_rows(listing.stdout)
    assert all(rows[name]["source"].startswith(str(built)) for name in BUNDLED), rows
    shown = run("strategies", "show", "sma_cross", cwd=empty, env=env, exe=exe)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"measured warmup: \d+ candles .* on the bundled synthetic sample", shown.stdout), shown.stdout
    assert tree(empty) == set()


# ---------------------------------------------------------------- systrade init


def uncomment(text: str, keys: set[str]) -> str:
    """The bot example of the template with the lines of ``keys`` (and its table header) uncommented."""
    out, in_bot = [], False
    for line in text.splitlines():
        if line == "# [[paper.bots]]":
            in_bot, line = True, line[2:]
        elif not line.startswith("#"):
            in_bot = False
        match = re.match(r"(# (?:# )?)(\w+) = ", line)
        if in_bot and match and match.group(2) in keys:
            line = line[len(match.group(1)):]
        out.append(line)
    return "\n".join(out) + "\n"


def test_init_writes_every_setting_at_its_default(tmp_path: Path) -> None:
    from systrade.config import BotSettings, Settings, load_settings

    result = run("init", "proj", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "proj"
    assert tree(project) == {"systrade.toml", "strategies/my_strategy.py"} and (project / "data").is_dir()
    config = project / "systrade.toml"
    loaded = load_settings(str(config))
    assert loaded.model_dump(exclude={"source"}) == Settings().model_dump(exclude={"source"})
    text = config.read_text()
    raw = tomllib.loads(text)
    for section, model in Settings.model_fields.items():
        if section == "source":  # not a setting: the loader records the file it read
            continue
        if section == "exchanges":  # a table per exchange id: an example, commented out
            assert "# [exchanges.binance]\n# timeout = 10000\n" in text and section not in raw
            continue
        tables = [(f"[{section}]", model.annotation.model_fields, raw[section])]
        for key, info in model.annotation.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):  # [brokers.alpaca]
                tables.append((f"[{section}.{key}]", info.annotation.model_fields, raw[section][key]))
        for header, fields, values in tables:
            for key, info in fields.items():
                item = typing.get_args(info.annotation)[0] if typing.get_origin(info.annotation) is list else None
                if isinstance(item, type) and issubclass(item, BaseModel):  # [[paper.bots]]: an example to uncomment
                    assert f"# [[{header[1:-1]}.{key}]]\n" in text, (header, key)
                    continue
                if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                    continue
                pattern = rf"^(# )?{key} = .+ # \S" if info.get_default() is None else rf"^{key} = .+ # \S"
                assert re.search(pattern, text[text.index(header):], re.M), (header, key)
                assert (key in values) is (info.get_default() is not None), (header, key)
    for line in text[:text.index("# [exchanges.")].splitlines():  # every setting has its one-line comment
        if re.match(r"(# )*\w+ = ", line):
            assert " # " in line, line

    required = {k for k, f in BotSettings.model_fields.items() if f.is_required()}
    with_defaults = {k for k, f in BotSettings.model_fields.items() if not f.is_required()
                     and f.get_default() is not None}
    config.write_text(uncomment(text, required | with_defaults))
    bot = load_settings(str(config)).paper.bots[0]
    assert bot == BotSettings(name="btc-sma", strategy="sma_cross", exchange="binance", symbol="BTC/USDT",
                              timeframe="1h")
    for key, info in BotSettings.model_fields.items():
        if key not in required | with_defaults:  # each optional setting's example is valid on its own
            alone = required - {"symbol"} if key == "symbols" else required  # symbols replaces symbol
            config.write_text(uncomment(text, alone | {key}))
            assert getattr(load_settings(str(config)).paper.bots[0], key) == info.examples[0]


def test_init_example_strategy_backtests(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    result = run("backtest", "my_strategy", "--json", "out.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["strategy"] == "my_strategy" and doc["total_trades"] > 0 and doc["synthetic"] is True
    listing = strategy_rows(run("strategies", "list", cwd=tmp_path).stdout)
    assert listing["my_strategy"]["from"] == "project"
    assert listing["my_strategy"]["source"] == "strategies/my_strategy.py"


def test_init_refuses_to_overwrite_a_config_unless_forced(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    config, example = tmp_path / "systrade.toml", tmp_path / "strategies" / "my_strategy.py"
    template = config.read_text()
    config.write_text("[backtest]\nfees = 0.002\n")
    example.write_text(never_trades("MyStrategy", "edited by the user"))
    before = {p: p.read_text() for p in (config, example)}
    refused = run("init", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "--force" in refused.stderr
    assert "systrade.toml already exists" in refused.stderr
    assert {p: p.read_text() for p in before} == before
    forced = run("init", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert config.read_text() == template
    assert example.read_text() == before[example]  # the user's strategy is never overwritten


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file\n")
    result = run("init", "notes.txt", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "notes.txt is a file, not a folder" in result.stderr
    assert tree(tmp_path) == {"notes.txt"}


# ---------------------------------------------------------------- --version and --help


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"systrade {expected}\n"


def every_command() -> list[list[str]]:
    """Every command and group of the CLI, as the words that reach it."""
    from typer.main import get_command

    from systrade.cli import _register, app

    _register()
    found = []

    def walk(command, words: list[str]) -> None:
        found.append(words)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(get_command(app), [])
    return found


def test_help_shows_no_value_for_flags_and_shows_the_defaults(tmp_path: Path) -> None:
    commands = every_command()
    assert ["backtest"] in commands and ["data", "download"] in commands and ["paper", "replay"] in commands
    for words in commands:
        result = run(*words, "--help", cwd=tmp_path)
        assert result.returncode == 0, (words, result.stderr)
        assert "<bool>" not in result.stdout, (words, result.stdout)
        assert re.search(r"--help +Show this message", result.stdout), words
    backtest = run("backtest", "--help", cwd=tmp_path).stdout
    assert re.search(r"--cash-sharing +Several symbols", backtest)
    assert "[default: all]" in backtest and "[default: percent]" in backtest
    assert "[default: 600.0]" in run("--help", cwd=tmp_path).stdout


"""A config file the user got wrong is one clear line and exit 2, whatever the command."""

from __future__ import annotations

from pathlib import Path

from test_secrets import run


def test_a_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_bytes("[backtest]\ncash = 100\n# café\n".encode("latin-1"))
    for command in (["backtest", "sma_cross"], ["paper", "status"]):
        result = run(tmp_path, *command)
        assert result.returncode == 2, result.stderr
        message = " ".join(result.stderr.split())
        assert "is not UTF-8 text (byte 0xe9 on line 3)" in message and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["systrade.toml"]

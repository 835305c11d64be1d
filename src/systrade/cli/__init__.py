"""The ``systrade`` command: argument parsing only; the work happens in the packages below."""

from __future__ import annotations

import sys
import traceback

import typer
from rich.console import Console
from rich.markup import escape

from systrade.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build, backtest and paper-trade systematic strategies.")
err = Console(stderr=True)
GLOBAL = {"config": None, "debug": False}


def _flags_take_no_value() -> None:
    """Show no value type for a flag in --help (typer's rich help writes ``--debug <bool>``, as if it took one)."""
    try:
        from typer.core import TyperOption

        shown = TyperOption.display_type_rich
    except (ImportError, AttributeError):  # a typer without this hook: its help stays as it is
        return
    if getattr(shown, "systrade_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich.systrade_flags = True
    TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()


def _show_version(value: bool) -> None:
    if value:
        import systrade

        typer.echo(f"systrade {systrade.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print systrade's version and exit."),
    config: str = typer.Option(None, "--config", help="Path to systrade.toml (also $SYSTRADE_CONFIG)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    timeout: float = typer.Option(600.0, "--timeout", help="Longest one call of a strategy's signals() may take, "
                                  "in seconds (0: no limit)."),
) -> None:
    """Global options may also be given after the command name."""


def settings():
    """Settings for the running command (config file from --config / $SYSTRADE_CONFIG / ./systrade.toml)."""
    from systrade.config import load_settings

    return load_settings(GLOBAL["config"])


def _extract_globals(argv: list[str]) -> list[str]:
    """Take ``--debug`` and ``--config PATH`` from anywhere on the command line."""
    rest: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--debug":
            GLOBAL["debug"] = True
        elif item == "--config":
            GLOBAL["config"] = next(items, None)
        elif item.startswith("--config="):
            GLOBAL["config"] = item.split("=", 1)[1]
        elif item == "--timeout" or item.startswith("--timeout="):
            _set_timeout(item.split("=", 1)[1] if "=" in item else next(items, ""))
        else:
            rest.append(item)
    return rest


LEGACY_JSON_FLAG = (["paper", "status"], ["paper", "trades"])


def _json_to_stdout(args: list[str]) -> list[str]:
    """``--json -`` puts the JSON alone on standard output, so everything else the command prints goes to
    standard error. The old flag form of ``paper status|trades --json`` (no path) still works, with a note."""
    args = list(args)
    if args[:2] in LEGACY_JSON_FLAG and "--json" in args:
        at = args.index("--json")
        if at + 1 == len(args) or (args[at + 1].startswith("-") and args[at + 1] != "-"):
            args.insert(at + 1, "-")
            err.print("note: `--json` without a path is deprecated and will be removed; write `--json -` for "
                      "standard output or `--json PATH` for a file", highlight=False)
    to_stdout = "--json=-" in args or any(a == "--json" and args[i + 1:i + 2] == ["-"] for i, a in enumerate(args))
    if to_stdout:
        sys.stdout = sys.stderr  # tables, notes and progress; write_json writes to the real standard output
    return args


def _set_timeout(text: str) -> None:
    from systrade.strategy import set_call_timeout

    try:
        seconds = float(text)
    except ValueError:
        raise UserError(f"--timeout {text!r} is not a number of seconds; e.g. --timeout 120 (0: no limit)") from None
    if not (seconds >= 0 and seconds < float("inf")):
        raise UserError(f"--timeout {text!r} is not valid; give a number of seconds >= 0 (0: no limit)")
    set_call_timeout(seconds)


def _register() -> None:
    from systrade.cli import (  # noqa: F401  (commands register themselves)
        backtest,
        check,
        data,
        init,
        notify,
        optimize,
        paper,
        strategies,
        web,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; --debug shows the traceback."""
    try:
        args = _extract_globals(list(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    args = _json_to_stdout(args)
    _register()
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="systrade", standalone_mode=True)  # usage errors exit 2 there
    except SystemExit as done:
        if argv is None and args and args[0] in BATCH_COMMANDS:
            _exit_now(done.code)
        raise
    except UserError as exc:
        _traceback_if_debug()
        err.print(f"[bold red]error:[/] {escape(_redact(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: say so briefly
        _traceback_if_debug()
        err.print(f"[bold red]internal error:[/] {escape(_redact(f'{type(exc).__name__}: {exc}'))}"
                  + ("" if GLOBAL["debug"] else " (rerun with --debug for the traceback)"),
                  highlight=False, soft_wrap=True)
        sys.exit(1)


# One-shot computations: when one ends, the process ends.
BATCH_COMMANDS = frozenset({"backtest", "optimize", "walkforward", "check"})


def _exit_now(code: object) -> None:
    """End the process without tearing down the interpreter's modules one by one (numba's and pandas' take about
    half a second): exit handlers run and output is flushed first, so nothing written is lost. Only for a real
    process that ran a one-shot command (``main()`` from the ``systrade`` script), never inside a caller."""
    import atexit
    import os

    if code is not None and not isinstance(code, int):  # sys.exit("message") prints it and exits 1
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)


def _redact(text: str) -> str:
    from systrade.exchange import redact

    return redact(text)


def _traceback_if_debug() -> None:
    """With --debug, the traceback, with every secret and URL password masked like any other output."""
    if GLOBAL["debug"]:
        sys.stderr.write(_redact(traceback.format_exc()))

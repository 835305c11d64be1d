"""A new project (``systrade init``): a ``systrade.toml`` listing every setting, a strategy to start from, a store.

The file is generated from the settings models (``systrade.config``): every key with its default and the
field's description, so it can never drift from what the loader accepts.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

import systrade
from systrade.bundled import EXAMPLE_STRATEGY
from systrade.config import DEFAULT_FILE, Settings
from systrade.errors import UserError

FIRST_SECTIONS = ("data", "strategies", "backtest")  # what a new user looks at first; the rest follow in model order
NOT_SETTINGS = {"source"}  # Settings fields the loader fills in itself
COMMENT_COLUMN = 40


def toml_value(value: Any) -> str:
    """``value`` written as TOML (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _line(text: str, comment: str) -> str:
    return f"{text:<{COMMENT_COLUMN - 1}} # {comment}" if comment else text


def _example(info: FieldInfo) -> Any:
    if not info.examples:
        raise ValueError("a setting without a default needs examples=[...] in its Field to be written to the template")
    return info.examples[0]


def _field_lines(fields: dict[str, FieldInfo], prefix: str = "") -> list[str]:
    """One line per field: ``key = default  # description``; commented out (with an example) when the field has no
    default value to write (None, or required)."""
    lines = []
    for key, info in fields.items():
        description = info.description or ""
        if info.is_required():
            lines.append(_line(f"{prefix}{key} = {toml_value(_example(info))}", f"{description} (required)"))
        elif info.get_default(call_default_factory=True) is None:
            unset = "" if "default" in description else " (unset by default)"
            lines.append(_line(f"{prefix}# {key} = {toml_value(_example(info))}", description + unset))
        else:
            lines.append(_line(f"{prefix}{key} = {toml_value(_dump(info.get_default(call_default_factory=True)))}",
                               description))
    return lines


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _model_doc(model: type) -> str:
    doc = vars(model).get("__doc__") or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def config_template() -> str:
    """The text of a new ``systrade.toml``: every setting at its default, each with a one-line comment."""
    fields = {k: v for k, v in Settings.model_fields.items() if k not in NOT_SETTINGS}
    order = [k for k in FIRST_SECTIONS if k in fields] + [k for k in fields if k not in FIRST_SECTIONS]
    sections = [k for k in order if _is_model(fields[k].annotation)]
    id_tables = [k for k in order if k not in sections and fields[k].get_default(call_default_factory=True) == {}
                 and isinstance(fields[k].examples and fields[k].examples[0], dict)]
    out = [
        f"# systrade.toml, written by `systrade init` (systrade {systrade.__version__}).",
        "# Every setting is listed at its default; change what you need. Unknown keys are refused.",
        "# Secrets never go here: keys come from SYSTRADE_<EXCHANGE>_API_KEY, _SECRET and _PASSWORD.",
    ]
    top = {k: fields[k] for k in order if k not in sections and k not in id_tables}  # TOML: before any table
    if top:
        out.extend(["", *_field_lines(top)])
    for name in sections:
        section = fields[name].annotation
        out.append("")
        if _model_doc(section):
            out.append(f"# {_model_doc(section)}")
        out.append(f"[{name}]")
        lists_of_tables = []
        for key, sub in section.model_fields.items():
            item = _list_item_model(sub.annotation)
            if item is not None and sub.get_default(call_default_factory=True) == []:
                lists_of_tables.append((key, sub, item))
        tables = {key for key, _, _ in lists_of_tables}  # written after the section's keys, as tables
        nested = {k: v for k, v in section.model_fields.items() if _is_model(v.annotation)}  # [brokers.alpaca]
        out.extend(_field_lines({k: v for k, v in section.model_fields.items() if k not in tables | set(nested)}))
        for key, sub in nested.items():
            out.append("")
            if _model_doc(sub.annotation):
                out.append(f"# {_model_doc(sub.annotation)}")
            out.append(f"[{name}.{key}]")
            out.extend(_field_lines(sub.annotation.model_fields))
        for key, sub, item in lists_of_tables:
            out.append("")
            out.append(f"# [[{name}.{key}]]: {sub.description or key} ({_model_doc(item).rstrip('.')})")
            out.append("# To add one, uncomment this example; the lines still starting with `# #` are optional.")
            out.append(f"# [[{name}.{key}]]")
            out.extend(_field_lines(item.model_fields, prefix="# "))
    for name in id_tables:  # one table per id (exchanges): an example, commented out
        info = fields[name]
        out.extend(["", f"# [{name}.<id>]: {info.description}. For example:"])
        for table, values in _example(info).items():
            out.append(f"# [{name}.{toml_key(table)}]")
            out.extend(f"# {toml_key(k)} = {toml_value(v)}" for k, v in values.items())
    return "\n".join(out) + "\n"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is list and len(args) == 1 and _is_model(args[0]):
        return args[0]
    return None


def init_project(folder: str | Path, force: bool = False) -> list[tuple[Path, str]]:
    """Create a project in ``folder``: ``systrade.toml``, ``strategies/my_strategy.py`` and ``data/``.

    Refuses (UserError) before writing anything when ``systrade.toml`` exists and ``force`` is not given; an
    existing ``strategies/my_strategy.py`` is never overwritten. Returns each path with what happened to it."""
    root = Path(folder)
    config = root / DEFAULT_FILE
    strategy = root / "strategies" / EXAMPLE_STRATEGY.name
    data = root / "data"
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file, not a folder; give a folder for the new project")
    for path in (root / "strategies", data):
        if path.exists() and not path.is_dir():
            raise UserError(f"{path} is a file, not a folder; move it away or init another folder")
    if config.exists() and not force:
        raise UserError(f"{config} already exists; keep it, or overwrite it with every default: systrade init --force")
    if config.is_dir():
        raise UserError(f"{config} is a folder; move it away first")
    done = []
    try:
        data.mkdir(parents=True, exist_ok=True)
        strategy.parent.mkdir(exist_ok=True)
        existed = config.exists()
        config.write_text(config_template(), encoding="utf-8")
        done.append((config, "overwritten with every default" if existed else "every setting at its default"))
        if strategy.exists():
            done.append((strategy, "kept (already there)"))
        else:
            shutil.copyfile(EXAMPLE_STRATEGY, strategy)
            done.append((strategy, "an example strategy to start from"))
        done.append((data, "the candle store (commands use the synthetic sample until you add candles)"))
    except OSError as exc:
        raise UserError(f"cannot create the project in {root} ({exc.strerror}: {exc.filename}); check the folder's "
                        "permissions") from None
    return done

"""Logging for the daemon: human lines on stderr, optionally JSON lines in a file (secrets redacted)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from systrade.exchange import redact


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                           "level": record.levelname.lower(), "logger": record.name,
                           "message": redact(record.getMessage())})


class Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(json_path: str | None = None, level: int = logging.INFO) -> None:
    """Human log on stderr; with ``json_path`` also JSON lines appended to that file."""
    root = logging.getLogger("systrade")
    root.setLevel(level)
    root.handlers.clear()
    human = logging.StreamHandler()
    human.setFormatter(Redacting("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(human)
    if json_path:
        handler = logging.FileHandler(json_path, encoding="utf-8")
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

"""Logging in logfmt or JSON, and messages worth saying once per process."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

_said: set[str] = set()
_said_lock = threading.Lock()


def log_once(key: str, level: int, message: str, *args: object) -> None:
    """Log a message the first time `key` is seen; a condition that persists is said once."""
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    logging.getLogger("copilot_exporter").log(level, message, *args)


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": _timestamp(record), "level": record.levelname.lower(),
                  "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\n\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": _timestamp(record), "level": record.levelname.lower(),
                  "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return json.dumps(fields)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("urllib3").setLevel(logging.WARNING)

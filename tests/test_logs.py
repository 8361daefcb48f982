"""Log output cannot be forged by what GitHub sends, and SIGHUP does not end the process."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml

from copilot_exporter.logs import JsonFormatter, LogfmtFormatter
from conftest import TOKEN

pytestmark = pytest.mark.integration


# An error message as a hostile or broken server could send it, after a warning about it.
FORGED = 'Not Found\r\nts=2026-01-01T00:00:00.000Z level=error logger=x msg="token leaked"\x1b[2K\u2028\u202e\ud800'


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("copilot_exporter.refresher", logging.WARNING, __file__, 1, "%s", (message,), None)


def test_logfmt_escapes_line_breaks_and_control_characters():
    line = LogfmtFormatter().format(record(FORGED))
    assert "\n" not in line and "\r" not in line
    assert all(c == " " or c.isprintable() for c in line)
    assert line.endswith(
        r' msg="Not Found\r\nts=2026-01-01T00:00:00.000Z level=error logger=x '
        r'msg=\"token leaked\"\x1b[2K\u2028\u202e\ud800"'
    )
    line.encode("utf-8")  # writable to any UTF-8 stream (the lone surrogate is escaped)


@pytest.mark.parametrize(
    "value, shown",
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("a=b", '"a=b"'),
        ("tab\there", r'"tab\there"'),
        ("back\\slash", r'"back\\slash"'),
        ("", '""'),
        ("ünïcode", "ünïcode"),
    ],
)
def test_logfmt_values(value, shown):
    assert LogfmtFormatter().format(record(value)).endswith(f" msg={shown}")


def test_json_log_lines_stay_one_valid_object():
    line = JsonFormatter().format(record(FORGED))
    assert "\n" not in line and "\r" not in line
    assert json.loads(line)["msg"] == FORGED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sighup_is_logged_and_ignored(simulator, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "github": {"api_url": simulator.api_url, "token": TOKEN},
                "source": "legacy",
                "organizations": [{"name": "acme", "seats": False}],
            }
        )
    )
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "copilot_exporter", "--config", str(config), "--web.listen-address", address],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{address}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the exporter did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert process.poll() is None, "SIGHUP ended the process"
        assert requests.get(f"http://{address}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert "received SIGHUP: ignored" in err

"""The fast tier stays fast: conftest fails a test marked neither integration nor e2e that asks for
the simulator, starts a process or opens a socket, and lets marked tests do so."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


TESTS = """
import socket
import subprocess
import sys

import pytest


def test_pure():
    assert sum([1, 2]) == 3


def test_asks_for_the_simulator(simulator):
    pass


def test_starts_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_opens_a_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))


@pytest.mark.integration
def test_marked_starts_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.e2e
def test_marked_opens_a_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
"""


def test_unmarked_tests_that_use_the_simulator_a_process_or_a_socket_fail(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    integration\n    e2e\n")
    (tmp_path / "test_sample.py").write_text(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    errors = {line.split("::")[1].split(" ")[0] for line in result.stdout.splitlines() if line.startswith("ERROR ")}
    assert errors == {"test_asks_for_the_simulator", "test_starts_a_process", "test_opens_a_socket"}, result.stdout
    assert "5 passed, 3 errors" in result.stdout  # the marked ones and the pure one pass
    assert "uses simulator: mark the test" in result.stdout
    assert "subprocess.Popen in a test marked neither integration nor e2e" in result.stdout
    assert "socket.bind in a test marked neither integration nor e2e" in result.stdout

"""The integration marker is enforced: an unmarked test that starts a process or a server fails,
a marked one passes, and a test that only uses such a fixture counts as starting one."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration  # it runs pytest in a subprocess

CONFTEST = "pytest_plugins = ['tests.process_guard']\n"
TESTS = """
import socket
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def server():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


def test_unmarked_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.integration
def test_marked_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_unmarked_fixture_user(server):
    assert server


def test_pure():
    assert 1 + 1 == 2
"""


def test_unmarked_process_and_server_tests_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_guarded=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked_process starts a process or a server (itself)*",
            "*test_unmarked_fixture_user starts a process or a server (through fixture(s) server)*",
        ]
    )
    fast = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not integration")
    fast.assert_outcomes(passed=1, failed=2, deselected=1)

"""The `integration` marker, enforced: a test that starts a process or listens on a socket, itself
or through a fixture it uses, must carry it, so `pytest -m "not integration"` is the fast loop
(no pipelines, servers, browsers or subprocesses) and stays so as tests are added.

Loaded as a plugin from the root conftest. It wraps the three ways a test reaches another
process or a port (subprocess.Popen, multiprocessing's Process.start, socket.listen) and
attributes each call to the fixture being set up, else to the running test.
"""

from __future__ import annotations

import multiprocessing.process
import socket
import subprocess
from collections.abc import Callable, Generator
from typing import Any

import pytest

MARKER = "integration"


class _Spawns:
    """Which fixtures and which test (the one running now) started a process or a server."""

    def __init__(self) -> None:
        self.fixture: pytest.FixtureDef[Any] | None = None
        # By definition, not by name: two modules' `home` fixtures are different fixtures.
        self.fixtures: dict[int, str] = {}
        self.test_spawned = False

    def record(self) -> None:
        if self.fixture is not None:
            self.fixtures[id(self.fixture)] = self.fixture.argname
        else:
            self.test_spawned = True


_spawns = _Spawns()


def _recording(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _spawns.record()
        return original(*args, **kwargs)

    return wrapper


subprocess.Popen.__init__ = _recording(subprocess.Popen.__init__)  # type: ignore[method-assign]
socket.socket.listen = _recording(socket.socket.listen)  # type: ignore[method-assign]
multiprocessing.process.BaseProcess.start = _recording(  # type: ignore[method-assign]
    multiprocessing.process.BaseProcess.start
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: starts processes, servers, pipelines or a browser (deselect with "
        f"-m 'not {MARKER}' for the fast loop)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
    previous, _spawns.fixture = _spawns.fixture, fixturedef
    try:
        return (yield)
    finally:
        _spawns.fixture = previous


def _used_fixtures(item: pytest.Item) -> list[pytest.FixtureDef[Any]]:
    """The fixture definitions the test resolved (the closest one per name)."""
    info = getattr(item, "_fixtureinfo", None)  # pytest exposes no public accessor
    if info is None:
        return []
    return [definitions[-1] for definitions in info.name2fixturedefs.values() if definitions]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    _spawns.test_spawned = False
    result = yield
    fixtures = sorted(
        _spawns.fixtures[id(definition)]
        for definition in _used_fixtures(item)
        if id(definition) in _spawns.fixtures
    )
    if (_spawns.test_spawned or fixtures) and item.get_closest_marker(MARKER) is None:
        how = f"through fixture(s) {', '.join(fixtures)}" if fixtures else "itself"
        pytest.fail(
            f"{item.nodeid} starts a process or a server ({how}): mark it "
            f"@pytest.mark.{MARKER} so the fast loop (-m 'not {MARKER}') leaves it out",
            pytrace=False,
        )
    return result

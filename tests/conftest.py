import threading
import time

import pytest


@pytest.fixture(autouse=True)
def babysit_home(tmp_path_factory, monkeypatch):
    """Every test gets its own store folder: nothing is written into the repository's runs/."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BABYSIT_HOME", str(home))
    return home


def _babysit_threads():
    return [t for t in threading.enumerate() if t.name.startswith("babysit-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_babysit_threads_left():
    """Fail the test if a session's 'babysit-' training thread it started is still alive after it (joined
    briefly first); one leaked earlier is blamed on its own test, not this one."""
    before = set(_babysit_threads())
    yield
    deadline = time.monotonic() + 2.0
    for thread in _babysit_threads():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in _babysit_threads() if t not in before]
    if alive:
        pytest.fail(f"training threads left running after the test: {[t.name for t in alive]}")

import os
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


def _run_processes():
    """This process's children training a run (``python -m babysit.worker``) and not yet ended."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"babysit.worker" in cmdline:
            found.add(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_run_processes_left():
    """Fail the test if a run's process it started is still there after it (a few seconds allowed to end)."""
    before = _run_processes()
    yield
    deadline = time.monotonic() + 5.0
    while (_run_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _run_processes() - before
    if left:
        pytest.fail(f"run processes left running after the test: {sorted(left)}")

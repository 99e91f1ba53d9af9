"""A real `streamlit run app.py` server and Debian's chromium, driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (scripts/test installs it). The server
runs in its own process on a free port of 127.0.0.1, with BABYSIT_HOME in a temporary folder; the
tests read that store directly to check what the page did. Screenshots go to tests/artifacts/e2e/.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = REPO / "tests" / "artifacts" / "e2e"
STARTUP = 60.0  # seconds for a server to answer its health check


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on a store folder; ``restart()`` stops it and starts a new one on the same
    folder (on a new port: the old one may linger in TIME_WAIT)."""

    def __init__(self, home, log_dir):
        self.home = str(home)
        self.log_dir = Path(log_dir)
        self.process = None
        self.port = None
        self.starts = 0
        self._log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def start(self):
        self.port = free_port()
        self.starts += 1
        env = {**os.environ, "BABYSIT_HOME": self.home, "PYTHONUNBUFFERED": "1"}
        env.pop("BABYSIT_MAX_RUNNING", None)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_dir / f"server-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.headless", "true", "--server.fileWatcherType", "none"],  # nothing to watch in a test
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}_stcore/health", timeout=2) as response:
                    if response.read().decode().strip() == "ok":
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer its health check within {STARTUP:.0f} s; see {self._log.name}")

    def stop(self):
        """Ask the server to stop (it checkpoints its runs on the way out); kill it if it will not."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self):
        self.stop()
        return self.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves a screenshot of what the page showed."""
    outcome = yield
    report = outcome.get_result()
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and page is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{item.name}.png"))
        except Exception:  # the browser may be what failed
            pass


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def server_home(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-home")


@pytest.fixture(scope="module")
def server(server_home, artifacts):
    srv = Server(server_home, artifacts)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile for every session
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, accept_downloads=True,
            viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser_context):
    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    yield page

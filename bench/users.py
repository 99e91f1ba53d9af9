"""Eight people babysitting at once: one server, N browser sessions each training a run, for a minute.

    python bench/users.py [--seconds 60] [--users 8] [--every 5] [--quick] [--json out.json]

A real `streamlit run app.py` is started on a free port with a fresh store (BABYSIT_MAX_RUNNING set to
at least the number of users). Each run trains in a process of its own, a child of the server running
``python -m babysit.worker``. Debian's chromium (headless, Playwright) opens one browser context per
user, a separate session with its own cookies, as N people would; each creates a run on moons (the
form's defaults, but a seed of its own and a learning-rate decay of 0.1: see User.create), and once
all are made, each starts its own. Then, for ``--seconds``:

- every ``--every`` seconds (staggered across users), a user moves its α slider one notch with the
  keyboard (ArrowRight, then ArrowLeft back, ...), a new move once the last one is applied. The
  latency is the time from the key press reaching the page (a keydown listener in the page, this
  machine's clock) to the ``time`` of the run's "change" event in the store, stamped by the run's
  training thread when it applied the change. A change not applied within 10 s counts as infinitely
  late.
- each page reads its own status line ("running · step N · ...") every 100 ms and logs the times its
  step changed: the refresh gap is the longest time the step stayed the same. The cost chart fetches
  the status line with its figure every second, so a page that keeps refreshing shows gaps of about a second.
- the resident memory (psutil, else /proc/<pid>/status VmRSS) of the server, and of the server with
  its run processes, is sampled every 2 s.

The run processes are the server's children (/proc/<pid>/stat) whose command line names
``babysit.worker``. While the runs train there must be exactly N of them, the same through the
measurement, each with at least two threads that lived through it; each one's CPU time over the
measurement is recorded, and its busiest thread then (/proc/<pid>/task/<tid>/stat) is the one that
trained. (Only the threads present at both ends count: a thread that comes and goes, such as a
library's pool, is not the run's.) At the end each user
presses Stop: in each run process that thread, and no other, must end with its run, no thread may
be left that was not there through the measurement, and the process lives on (a stopped run's
process waits for the server's commands, with its main thread and numpy's BLAS threads). The
server's own thread counts (/proc/<pid>/task) are printed too, for what they are worth: Streamlit
and anyio keep pools of threads that come and go. Then the pages close, and the server is stopped
with SIGTERM: it must exit by itself within 30 s, and within the same 30 s no run process may be left.

A page whose Streamlit frontend fails (an uncaught error in the page, the app gone blank) is
reported with its errors; one that fails before the measurement is reloaded once, as its user would.

Printed: p50/p95/max change→applied latency, the refresh gaps, the server's RSS and the server's plus
its run processes' at the start/peak/end, each run's steps/s, each run process's CPU time and threads,
the server's thread counts, and PASS/FAIL against the floors: p95 latency under 2 s; every page's
longest refresh gap under 5 s and no page failed; memory bounded (of the server with its run
processes, the peak of the second half of the measurement at most 5 % + 20 MB above the peak of its
first half); every run stopped, its process's training thread ended (and only it), and no run process
outlived the server; the server exits on SIGTERM within 30 s.
On a shared machine (this one has 2 cores, shared by the server, 8 run processes and chromium's
8 renderers), the figures move from run to run: check the load average printed at the end.
"""

import argparse
import json
import math
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from page import cpu_seconds as cpu_by_role  # bench/page.py's: the server, its run processes, chromium

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from live_charts import wait_for_status  # noqa: E402  the status line, in the cost chart's frame

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
STATUS = re.compile(r"^(created|running|paused|stopped|failed) · step ([\d,]+) · epoch")
RUN_URL = re.compile(r"\?run=([0-9a-f]{12})$")
ALPHA = "α, learning rate"
# In each page: its status line's step text, read every 100 ms by the page itself, each change logged with
# the time (Date.now(), this machine's clock); and every key pressed, with the time it reached the page.
WATCH = """() => {
    if (window.__bench) return;
    window.__bench = {steps: [], keys: []};
    const status = /^(created|running|paused|stopped|failed) · step ([\\d,]+) · epoch/;
    setInterval(() => {
        for (const frame of document.querySelectorAll('iframe')) {  // the cost chart's frame shows it
            let el = null;
            try { el = frame.contentDocument.querySelector('[data-testid="babysit-status"]'); } catch (e) {}
            const m = el && status.exec(el.textContent.trim());
            if (m) {
                const steps = window.__bench.steps;
                if (!steps.length || steps[steps.length - 1][1] !== m[2]) steps.push([Date.now(), m[2], m[1]]);
                break;
            }
        }
    }, 100);
    document.addEventListener("keydown", e => window.__bench.keys.push([Date.now(), e.key]), true);
}"""
APPLY_TIMEOUT = 10.0  # seconds after a key press before its change counts as never applied
FLOOR_P95 = 2.0  # seconds, change → applied
FLOOR_GAP = 5.0  # seconds without a refresh of a page's status line
RSS_EVERY = 2.0
TICK = os.sysconf("SC_CLK_TCK")  # /proc's CPU times are in clock ticks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def stat(path):
    """The fields of a /proc stat file after the command name (field 3, the state, first); None if gone."""
    try:
        with open(path) as f:
            return f.read().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    except OSError:
        return None


def cpu_seconds(fields):
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


def cpu_by_thread(pid):
    """{thread id: CPU seconds (user + system)} of the process's threads; {} if it is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    out = {}
    for tid in tids:
        fields = stat(f"/proc/{pid}/task/{tid}/stat")
        if fields is not None:  # else it ended meanwhile
            out[int(tid)] = cpu_seconds(fields)
    return out


def process_cpu(pid):
    fields = stat(f"/proc/{pid}/stat")
    return cpu_seconds(fields) if fields is not None else float("nan")


def run_processes(server_pid):
    """The server's run processes (its children running babysit.worker): {pid: start time}, the start time
    (field 22) to tell one from a later process given the same pid."""
    found = {}
    for entry in os.listdir("/proc"):
        fields = stat(f"/proc/{entry}/stat") if entry.isdigit() else None
        if fields is None or int(fields[1]) != server_pid or fields[0] == "Z":  # ppid; an exited one is no run's
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"babysit.worker" in f.read():
                    found[int(entry)] = fields[19]
        except OSError:  # ended meanwhile
            continue
    return found


def alive(pid, started):
    """Whether that process still runs: a zombie (its new parent has yet to reap it) or another process
    given its pid does not count."""
    fields = stat(f"/proc/{pid}/stat")
    return fields is not None and fields[0] not in ("Z", "X") and fields[19] == started


def memory(server_pid):
    """RSS, MB: the server's, and the server's plus its run processes'."""
    server = rss_mb(server_pid)
    runs = 0.0
    for pid in run_processes(server_pid):
        try:
            runs += rss_mb(pid)
        except Exception:  # ended meanwhile (psutil's NoSuchProcess, or OSError)
            pass
    return server, server + runs


class Server:
    def __init__(self, home, users, log):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "BABYSIT_HOME": home, "BABYSIT_MAX_RUNNING": str(max(8, users)), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.headless", "true", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with code {self.process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise SystemExit(f"the server did not answer within 60 s; see {log.name}")

    @property
    def pid(self):
        return self.process.pid

    def stop(self, timeout=30):
        """SIGTERM and wait: seconds it took to exit, or None (then it is killed, with its group)."""
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


class Store:
    """The server's store, read-only through a connection of this process's own."""

    def __init__(self, home):
        self.db = sqlite3.connect(f"file:{os.path.join(home, 'babysit.db')}?mode=ro", uri=True, timeout=10)
        self.last_event = 0

    def run(self, run_id):
        return self.db.execute("SELECT status, step, updated FROM runs WHERE id = ?", (run_id,)).fetchone()

    def new_events(self):
        rows = self.db.execute("SELECT id, run_id, time, body FROM events WHERE id > ? ORDER BY id",
                               (self.last_event,)).fetchall()
        if rows:
            self.last_event = rows[-1][0]
        return [(run_id, t, json.loads(body)) for _, run_id, t, body in rows]


class User:
    def __init__(self, number, context):
        self.number = number
        self.context = context
        self.page = context.new_page()
        self.crashed = False
        self.page.on("crash", lambda _: setattr(self, "crashed", True))
        self.errors = []  # uncaught errors in the page (the Streamlit frontend's own)
        self.page.on("pageerror", lambda error: self.errors.append(str(error).splitlines()[0][:120]))
        self.reloads = []
        self.failed_presses = 0
        self.run_id = None
        self.presses = []  # [press time, expected alpha, applied time or None]
        self.direction = "ArrowRight"
        self.alpha = 0.01
        self.resync = False
        self.log = None  # the page's own record, read at the end

    def create(self, url):
        """A run on moons with the form's defaults but its own seed (eight users, eight different runs) and
        a learning-rate decay of 0.1 (inverse time): Adam at a constant α = 0.01 has cost spikes late in
        a long run (seed 0 trips the guardrail at step 335,264), which would pause it mid-measurement."""
        from playwright.sync_api import expect

        self.page.goto(url)
        create = self.page.get_by_role("button", name="Create run")
        expect(create).to_be_enabled(timeout=90_000)
        for label, value in (("seed", str(self.number)), ("decay rate", "0.1")):
            box = self.page.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Enter")
            expect(box).to_have_value(value)
        # the form's script run has ended (Streamlit's running indicator gone): "Create run" reads it all
        self.page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')",
                                    timeout=90_000)
        expect(create).to_be_enabled(timeout=90_000)
        create.click()
        self.page.wait_for_url(RUN_URL, timeout=60_000)
        self.run_id = RUN_URL.search(self.page.url).group(1)
        wait_for_status(self.page, "created", timeout=60_000)

    def start(self):
        self.page.get_by_role("button", name="Start", exact=True).click()

    def watch(self, home):
        """Wait for the page to show its run training, then start its own record. A page that went blank
        (the Streamlit frontend failed: its errors are kept) is reloaded once, as its user would."""

        for attempt in range(2):
            try:
                wait_for_status(self.page, "running", timeout=30_000)
                break
            except AssertionError:
                path = os.path.join(home, f"user-{self.number + 1}-{attempt + 1}.png")
                self.page.screenshot(path=path)
                if attempt:
                    raise SystemExit(f"user {self.number + 1}'s page never showed its run training, reloaded or "
                                     f"not (crashed: {self.crashed}; errors: {self.errors}); see {path}") from None
                self.reloads.append(f"before the measurement ({'; '.join(self.errors) or 'no page error'})")
                self.page.reload()
        self.page.evaluate(WATCH)

    def press(self, grid):
        """Move α one notch (its value is followed here: it starts at the form's 0.01, and only this user
        moves it); False if the page has no slider to move (a blank page)."""
        slider = self.page.get_by_test_id("stSidebar").get_by_role("slider", name=ALPHA)
        try:
            if self.resync:  # the last press failed, maybe after its key went: read the slider again
                self.alpha = min(grid, key=lambda a: abs(a - float(slider.get_attribute("aria-valuetext"))))
                self.resync = False
            i = grid.index(self.alpha)
            expected = grid[i + 1] if self.direction == "ArrowRight" else grid[i - 1]
            pressed = time.time()
            slider.press(self.direction, timeout=10_000)
        except Exception:
            self.failed_presses += 1
            self.resync = True
            return False
        self.presses.append([pressed, expected, None])
        self.alpha = expected
        self.direction = "ArrowLeft" if self.direction == "ArrowRight" else "ArrowRight"
        return True

    def pending(self):
        return [p for p in self.presses if p[2] is None]

    def applied(self, event_time, new_alpha):
        for press in self.pending():
            if event_time >= press[0] - 1.0 and new_alpha == press[1]:  # clocks: the same machine's
                press[2] = event_time
                return True
        return False

    def stop(self):
        """Press Stop; a page gone blank meanwhile is reloaded first (and that is recorded)."""

        button = self.page.get_by_role("button", name="Stop", exact=True)
        try:  # a press is a websocket message, not a navigation: nothing to wait for after it
            button.click(timeout=15_000, no_wait_after=True)
            return
        except Exception:
            self.reloads.append(f"to press Stop ({'; '.join(sorted(set(self.errors))) or 'no page error'})")
        try:
            self.page.reload()
            line = wait_for_status(self.page, " · step ", timeout=60_000)
            if STATUS.match(line).group(1) != "stopped":  # the first press took
                button.click(timeout=30_000, no_wait_after=True)
        except Exception as error:  # counted below: its run is not stopped
            self.reloads.append(f"Stop could not be pressed: {str(error).splitlines()[0]}")

    def read_log(self):
        try:
            self.log = self.page.evaluate("() => window.__bench") or {"steps": [], "keys": []}
        except Exception:
            self.log = {"steps": [], "keys": []}

    def latencies(self):
        """Key press → applied, seconds: from the time the key reached the page when it was seen (one
        keydown per press, in order), else from the time this process pressed it."""
        keys = [t / 1000 for t, key in self.log["keys"] if key in ("ArrowRight", "ArrowLeft")]
        starts = keys if len(keys) == len(self.presses) else [p[0] for p in self.presses]
        return [(p[2] - start) if p[2] is not None else float("inf") for p, start in zip(self.presses, starts,
                                                                                           strict=True)]

    def longest_gap(self, start, end):
        """The longest time, within [start, end] (wall clock), that the status line kept the same step."""
        times = [start] + [t / 1000 for t, *_ in self.log["steps"] if start < t / 1000 < end] + [end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    def changes(self, start, end):
        return sum(start < t / 1000 < end for t, *_ in self.log["steps"])

    def last_status(self):
        return self.log["steps"][-1][2] if self.log["steps"] else None


def thread_count(pid, samples=10, every=0.2):
    """The median of a few samples: script-run threads come and go."""
    counts = []
    for _ in range(samples):
        counts.append(threads(pid))
        time.sleep(every)
    return int(statistics.median(counts))


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    if math.isinf(values[hi]):  # a change never applied: as late as can be
        return values[hi] if k > lo else values[lo]
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of measurement (default 60)")
    parser.add_argument("--users", type=int, default=8, help="browser sessions, each with its run (default 8)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a user's α changes (default 5)")
    parser.add_argument("--quick", action="store_true", help="20 seconds of measurement")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    if args.users < 1 or seconds <= 0 or args.every <= 0:
        parser.error("--users, --seconds and --every must be positive")

    sys.path.insert(0, ROOT)
    from playwright.sync_api import sync_playwright

    from babysit.ui.controls import ALPHA_GRID

    grid = sorted(set(ALPHA_GRID) | {0.01})
    home = tempfile.mkdtemp(prefix="babysit-users-")
    log = open(os.path.join(home, "server.log"), "wb")
    print(f"store and server log in {home}; {args.users} users, {seconds:g} s, a change every {args.every:g} s each")
    server = Server(home, args.users, log)  # its pid is the server's own: `python -m` runs it in that process
    threads_before, rss_before = thread_count(server.pid), rss_mb(server.pid)
    seen = {}  # every run process seen, {pid: start time}: none may outlive the server
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            # a first visit, closed at once: the server's first page load (its imports) is done before the
            # users come
            warm = browser.new_context()
            warm_page = warm.new_page()
            warm_page.goto(server.url, timeout=120_000)
            warm_page.get_by_role("button", name="Create run").wait_for(timeout=120_000)
            warm.close()
            time.sleep(1.0)
            users = []
            setup = time.monotonic()
            for n in range(args.users):  # each user makes a run; they start together, once all are made
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.set_default_timeout(60_000)
                context.set_default_navigation_timeout(120_000)
                user = User(n, context)
                user.create(server.url)
                users.append(user)
                print(f"  user {n + 1}: run {user.run_id} made ({time.monotonic() - setup:.0f} s)", flush=True)
            made = Store(home)
            for user in users:
                config = json.loads(made.db.execute("SELECT config FROM runs WHERE id = ?",
                                                    (user.run_id,)).fetchone()[0])
                if (config["seed"], config["hyperparameters"]["learning_rate_decay"]) != (user.number, 0.1):
                    print(f"  user {user.number + 1}'s run was not made as its form said: {config}", flush=True)
            for user in users:
                user.start()
            for user in users:
                user.watch(home)
            print(f"  all {len(users)} runs training ({time.monotonic() - setup:.0f} s)", flush=True)
            store = Store(home)
            store.new_events()  # only events from now on
            first = {u.run_id: store.run(u.run_id) for u in users}
            procs = run_processes(server.pid)
            seen.update(procs)
            threads0 = {pid: cpu_by_thread(pid) for pid in procs}
            cpu0 = {pid: process_cpu(pid) for pid in procs}
            roles0 = cpu_by_role()
            rss = [(0.0, *memory(server.pid))]  # (time, the server's, the server's plus its run processes')
            t0, wall0 = time.monotonic(), time.time()
            next_press = [t0 + 1.0 + args.every * k / len(users) for k in range(len(users))]
            next_rss = t0 + RSS_EVERY
            end = t0 + seconds
            while True:
                now = time.monotonic()
                late = [p for u in users for p in u.pending() if time.time() - p[0] < APPLY_TIMEOUT]
                if now >= end and not late:
                    break
                for k, user in enumerate(users):
                    if now < end and now >= next_press[k] and not user.pending():
                        user.press(grid)
                        next_press[k] += args.every
                for run_id, event_time, body in store.new_events():
                    changes = body.get("changes", {})
                    if body["kind"] == "change" and body["source"] == "user" and "alpha" in changes:
                        owner = next(u for u in users if u.run_id == run_id)
                        if not owner.applied(event_time, changes["alpha"][1]):
                            print(f"  an unexpected change in run {run_id}: {changes}", flush=True)
                if now >= next_rss and now < end:
                    rss.append((now - t0, *memory(server.pid)))
                    next_rss += RSS_EVERY
                time.sleep(0.02)
            wall_end = wall0 + seconds
            last = {u.run_id: store.run(u.run_id) for u in users}
            threads1 = {pid: cpu_by_thread(pid) for pid in procs}
            cpu1 = {pid: process_cpu(pid) for pid in procs}
            roles1 = cpu_by_role()
            cores = {role: (roles1[role] - roles0[role]) / seconds for role in roles1}
            procs_end = run_processes(server.pid)
            seen.update(procs_end)
            # in each run process, the thread that trained is the busiest over the measurement (the others:
            # its main thread, answering the server's requests, and numpy's BLAS threads, idle)
            runs = {}
            for pid in procs:
                used = {t: cpu - threads0[pid][t] for t, cpu in threads1[pid].items() if t in threads0[pid]}
                trainer = max(used, key=used.get) if used else None
                runs[pid] = {"cpu": cpu1[pid] - cpu0[pid], "threads": len(used), "lasting": set(used),
                             "trainer": trainer,
                             "trainer_cpu": used.get(trainer, float("nan")), "threads_stopped": None}
            one_each = (len(procs) == len(users) and procs_end == procs
                        and all(r["threads"] >= 2 for r in runs.values()))
            threads_training = thread_count(server.pid)
            for user in users:
                user.read_log()

            # the end: every user stops its run; the threads are counted again with the pages still open
            for user in users:
                user.stop()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(store.run(u.run_id)[0] != "stopped" for u in users):
                time.sleep(0.1)
            statuses = {u.run_id: store.run(u.run_id)[0] for u in users}
            time.sleep(1.0)
            # a stopped run's process lives on, waiting for commands, its training thread ended and no other
            # (that thread ends a moment after the store says stopped: a few tries)
            deadline = time.monotonic() + 10
            while True:
                left = {pid: set(cpu_by_thread(pid)) if alive(pid, procs[pid]) else None for pid in procs}
                ended = [pid for pid, r in runs.items() if left[pid] is not None and r["trainer"] not in (None, pid)
                         and r["lasting"] - left[pid] == {r["trainer"]} and left[pid] <= r["lasting"]]
                if len(ended) == len(runs) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            for pid, r in runs.items():
                r["threads_stopped"] = len(left[pid]) if left[pid] is not None else 0
            threads_stopped = thread_count(server.pid)
            for user in users:
                user.context.close()
            browser.close()
        time.sleep(2.0)
        threads_closed, rss_closed = thread_count(server.pid), memory(server.pid)
        seen.update(run_processes(server.pid))
        stop_started = time.monotonic()
        stopped_in = server.stop()
        # the run processes, in sessions of their own, are not stopped with the server's: each must close its
        # run and exit by itself once the server is gone, within the same 30 s
        while any(alive(pid, started) for pid, started in seen.items()) and time.monotonic() < stop_started + 30:
            time.sleep(0.1)
        runs_gone_in = time.monotonic() - stop_started
        outlived = sorted(pid for pid, started in seen.items() if alive(pid, started))
        for pid in outlived:  # not left training on a shared machine
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        final = Store(home)
        statuses_after = {r: final.run(r)[0] for r in statuses}
    except BaseException:
        server.kill()
        raise
    finally:
        log.close()

    latencies = sorted(x for u in users for x in u.latencies())
    never = sum(math.isinf(x) for x in latencies)
    gaps = {u.number: u.longest_gap(wall0, wall_end) for u in users}
    refreshes = {u.number: u.changes(wall0, wall_end) for u in users}
    rates = {r: (last[r][1] - first[r][1]) / max(last[r][2] - first[r][2], 1e-9) for r in first}
    half = seconds / 2

    def halves(column):
        """The peaks of the first half, of the second half, and of all of the measurement."""
        first_half = max(sample[column] for sample in rss if sample[0] <= half)
        second_half = max((sample[column] for sample in rss if sample[0] > half), default=first_half)
        return first_half, second_half, max(sample[column] for sample in rss)

    first_half, second_half, peak = halves(1)  # the server's
    first_total, second_total, peak_total = halves(2)  # with its run processes
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    fewer = threads_training - threads_stopped
    verdicts = {
        f"p95 change→applied < {FLOOR_P95:g} s": p95 < FLOOR_P95,
        f"every page kept refreshing (longest gap < {FLOOR_GAP:g} s, no page failed)":
            max(gaps.values()) < FLOOR_GAP and not any(u.errors or u.reloads or u.crashed for u in users),
        "memory bounded (server + run processes: 2nd-half peak ≤ 1st-half peak × 1.05 + 20 MB)":
            second_total <= first_total * 1.05 + 20,
        "every run stopped, its process's training thread ended, and no run process outlived the server":
            all(s == "stopped" for s in statuses.values()) and one_each and len(ended) == len(runs) and not outlived,
        "the server exits on SIGTERM within 30 s": stopped_in is not None,
    }

    print()
    print(f"{len(users)} users for {seconds:g} s from {time.strftime('%H:%M:%S', time.localtime(wall0))}")
    print(f"change → applied: {len(latencies)} changes, {never} not applied within {APPLY_TIMEOUT:g} s")
    print(f"  p50 {p50:.3f} s   p95 {p95:.3f} s   max {latencies[-1] if latencies else float('nan'):.3f} s")
    print("refresh: longest time each page's status line kept the same step, s (its number of updates)")
    print("  " + "  ".join(f"u{n + 1} {g:.2f} ({refreshes[n]})" for n, g in gaps.items()))
    for u in users:
        if u.last_status() != "running":  # a run its guardrail paused shows the same step from then on
            print(f"  u{u.number + 1}'s run was {u.last_status()} at the end of the measurement (its events say why)")
        if u.errors or u.reloads or u.failed_presses or u.crashed:
            print(f"  u{u.number + 1}: page errors {sorted(set(u.errors))}; reloads {u.reloads}; "
                  f"α moves impossible (no slider) {u.failed_presses}; renderer crashed {u.crashed}")
    print(f"server RSS, MB: {rss_before:.0f} before any page; {rss[0][1]:.0f} at the start of the measurement, "
          f"peak {peak:.0f}, end {rss[-1][1]:.0f} (peak of 1st half {first_half:.0f}, of 2nd half {second_half:.0f}); "
          f"{rss_closed[0]:.0f} after the pages closed")
    print(f"server + run processes RSS, MB: {rss[0][2]:.0f} at the start of the measurement, peak {peak_total:.0f}, "
          f"end {rss[-1][2]:.0f} (peak of 1st half {first_total:.0f}, of 2nd half {second_total:.0f}); "
          f"{rss_closed[1]:.0f} after the pages closed")
    print("steps/s per run (the store's step and flush time stamps):")
    print("  " + "  ".join(f"{r[:6]} {v:,.0f}" for r, v in rates.items()) + f"   total {sum(rates.values()):,.0f}")
    print(f"run processes: {len(procs)} as the runs trained, "
          + ("the same at the end of the measurement" if procs_end == procs
             else f"{len(procs_end)} at the end of it, not the same")
          + f"; {len(ended)} of {len(runs)} with their training thread, and only it, ended after Stop")
    print("  CPU s over the measurement (of which its busiest thread's, the one that trained); threads that lived "
          "through it → after Stop:")
    print("  " + "  ".join(f"{pid} {r['cpu']:.1f} ({r['trainer_cpu']:.1f}) {r['threads']}→{r['threads_stopped']}"
                           for pid, r in sorted(runs.items())))
    print(f"server threads (median of 10 samples): {threads_before} before any page; {threads_training} with "
          f"{len(users)} runs training; {threads_stopped} after every run stopped, pages open "
          f"({abs(fewer)} {'fewer' if fewer >= 0 else 'more'}); "
          f"{threads_closed} after the pages closed")
    print(f"runs after Stop: {sorted(set(statuses.values()))}; after the server stopped: "
          f"{sorted(set(statuses_after.values()))}; SIGTERM → exit in "
          + (f"{stopped_in:.1f} s" if stopped_in is not None else "more than 30 s (killed)")
          + (f"; its {len(seen)} run processes gone {runs_gone_in:.1f} s after SIGTERM" if not outlived else
             f"; {len(outlived)} of its {len(seen)} run processes still alive 30 s after SIGTERM (killed)"))
    print("CPU over the measurement, cores: " + ", ".join(f"{role} {c:.2f}" for role, c in cores.items()))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    for name, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print("PASS" if all(verdicts.values()) else "FAIL")
    if args.json:
        figures = {"users": len(users), "seconds": seconds, "latencies": latencies, "p50": p50, "p95": p95,
                   "gaps": gaps, "refreshes": refreshes, "rss": [(t, v) for t, v, _ in rss],
                   "rss_total": [(t, v) for t, _, v in rss], "rss_before": rss_before,
                   "rss_closed": rss_closed[0], "rss_closed_total": rss_closed[1], "rates": rates,
                   "threads": {"before": threads_before, "training": threads_training, "stopped": threads_stopped,
                               "closed": threads_closed},
                   "run_processes": runs, "run_processes_ended": ended, "run_processes_outlived": outlived,
                   "run_processes_gone_in": runs_gone_in,
                   "statuses": statuses, "stopped_in": stopped_in, "cpu_cores": cores, "verdicts": verdicts}
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, default=str)
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

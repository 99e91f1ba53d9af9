"""Training steps/s with the page open and refreshing, as a ratio of the same run with no page.

    python bench/page.py [--seconds S] [--rounds R]

A real `streamlit run app.py` server is started on a free port with a fresh store; Debian's
chromium (headless, driven by Playwright) creates a run on moons (decay rate 0.1, so it does not
overfit into its guardrail during the bench) and starts it. Then, turn by turn:

    no page   the tab is closed; the run trains on in its process, drawn by no one
    page      a tab shows the run (?run=<id>), its charts redrawn every second

Rates come from the store: each flush (at least once a second) records the run's step with a time
stamp, so steps/s = Δstep / Δtime between two flushes S seconds apart, as the run's own process saw them.
The floor is page / no page >= 0.9, best of R rounds each.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babysit.store import Store  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home, port):
    env = {**os.environ, "BABYSIT_HOME": home}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true", "--server.fileWatcherType", "none"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not start within 60 s")


def cpu_seconds():
    """CPU seconds (user + system) so far of the processes that matter here, by role: the server, the run
    processes (its children running babysit.worker) and chromium's (the browser and its renderers)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "run": 0.0, "chromium": 0.0}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = ("run" if b"babysit.worker" in cmdline else "server" if b"streamlit" in cmdline
                else "chromium" if b"chromium" in cmdline else None)
        if role:
            out[role] += (int(fields[11]) + int(fields[12])) / tick
    return out


def rate(store, run_id, seconds, cpu=None):
    """Steps per second between two flushes ``seconds`` apart, from the run's (step, updated) record."""
    first, before = store.get_run(run_id), cpu_seconds()
    time.sleep(seconds)
    last, after = store.get_run(run_id), cpu_seconds()
    if cpu is not None:
        cpu.append({role: (after[role] - before[role]) / seconds for role in after})
    if last.status != "running" or last.updated == first.updated:
        raise SystemExit(f"run {run_id} stopped training during the measurement ({last.status}, {last.error})")
    return (last.step - first.step) / (last.updated - first.updated)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of no page / page (default 3)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="babysit-bench-")
    port = free_port()
    server = start_server(home, port)
    store = Store(home)
    url = f"http://127.0.0.1:{port}/"
    best = {"no page": 0.0, "page": 0.0}
    cpu = {"no page": [], "page": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            # a decay keeps the run from overfitting into its guardrail (the defaults trip it near step 335,000)
            rate_box = page.get_by_role("spinbutton", name="decay rate")
            rate_box.click(timeout=60_000)
            rate_box.press("Control+a")
            rate_box.type("0.1")
            rate_box.press("Enter")
            time.sleep(1)
            page.get_by_role("button", name="Create run").click(timeout=60_000)
            page.get_by_role("button", name="Start").click(timeout=60_000)
            page.wait_for_url("**/?run=*")
            run_id = page.evaluate("location.href").split("run=")[1].split("&")[0]  # page.url can lag a rerun
            deadline = time.monotonic() + 60
            while store.get_run(run_id).status != "running":  # Start may need a second click once drawn
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {run_id} did not start: {store.get_run(run_id).status}")
                time.sleep(1)
                start = page.get_by_role("button", name="Start")
                if store.get_run(run_id).status != "running" and start.is_enabled():  # not started, not flushed yet
                    start.click(timeout=10_000)
            time.sleep(3)
            page.close()
            for _ in range(args.rounds):
                time.sleep(1)
                best["no page"] = max(best["no page"], rate(store, run_id, args.seconds, cpu["no page"]))
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}?run={run_id}")
                page.locator("[data-testid='stCustomComponentV1']").first.wait_for(timeout=60_000)  # a chart's frame
                time.sleep(2)
                best["page"] = max(best["page"], rate(store, run_id, args.seconds, cpu["page"]))
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    print(f"babysit page bench: moons 2-16-16-2 relu, Adam, batch 64; {args.seconds:g} s × {args.rounds} rounds")
    for name, value in best.items():
        print(f"  {name:8} {value:>9,.0f} steps/s")
    for name, samples in cpu.items():
        mean = {role: sum(s[role] for s in samples) / len(samples) for role in samples[0]}
        print(f"  CPU, {name}: " + ", ".join(f"{role} {v:.2f}" for role, v in mean.items()) + " cores")
    ratio = best["page"] / best["no page"]
    print(f"  page / no page = {ratio:.3f}  (floor 0.9: {'PASS' if ratio >= 0.9 else 'FAIL'})")


if __name__ == "__main__":
    main()

"""Each run the server keeps trains in a process of its own.

Python runs one thread at a time per process: a run training in the server's process would hold up
every page's redraw, and eight of them would starve the page. So the server spawns one process per run
(``python -m babysit.worker``, its training thread a little nicer than the server so that the page comes
first), which holds the real ``Session`` and its training thread and answers the server's requests over
a socket pair: commands, snapshots, predictions for the decision boundary. ``RemoteSession`` is the
server's end and offers what the pages use of a ``Session``.

The messages are ``babysit.wire``'s (JSON and raw arrays, no pickle). When the server dies, its
processes see the socket close (or get its SIGTERM), checkpoint and flush their run, mark it to resume,
and exit; killed with it (SIGKILL to the process group), they leave their runs to the store's recovery.
When a run's process dies, its ``RemoteSession`` says so, and the manager reopens the run from the store.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from babysit import wire
from babysit.blas import one_blas_thread
from babysit.errors import BabysitError, ConfigError, DataError, DivergedError
from babysit.store import StoreError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NICE = 5  # how much lower a run's training thread's priority is than the server's (BABYSIT_RUN_NICE)
REPLY_TIMEOUT = 30.0  # seconds a request may wait for its answer
OPEN_TIMEOUT = 300.0  # making or reopening a run loads its data set, which can take a while
ERRORS = {cls.__name__: cls for cls in (BabysitError, ConfigError, DataError, DivergedError, StoreError)}


class WorkerError(BabysitError):
    """The process training a run did not answer, or is gone."""


class RemoteCommand:
    """A command sent to a run's process; ``result()`` waits for it to be applied, like a Command's."""

    def __init__(self, session, command):
        self._session = session
        self.command = command  # as the process queued it, without its future

    def result(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        kind = self.command.kind
        while True:
            answer = self._session._ask("result", id=self.command.id)
            if answer["done"]:
                if answer.get("cancelled"):
                    raise concurrent.futures.CancelledError(f"{kind} was not applied: the run stopped")
                if answer.get("error"):
                    raise _rebuild_error(answer["error"])
                return answer["value"]
            if deadline is not None and time.monotonic() > deadline:
                raise concurrent.futures.TimeoutError(f"{kind} was not applied within {timeout} s")
            time.sleep(0.05)


class RemoteSession:
    """The server's end of a run training in its own process."""

    def __init__(self, process, conn, info):
        self._process, self._conn = process, conn
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._closed = False
        self._plot_data = None
        self.run_id = info["run_id"]
        self._name = info["name"]
        self.parent, self.fork_step = info["parent"], info["fork_step"]
        self.interrupted = info["interrupted"]

    @classmethod
    def create(cls, home, config, name=None, settings=None):
        """A new run in the store at ``home``, made and trained by a new process."""
        return cls._spawn({"op": "create", "home": str(home), "config": config, "name": name,
                           "settings": settings})

    @classmethod
    def open(cls, home, run_id, settings=None):
        """A stored run, reopened by a new process (StoreError if there is no such run)."""
        return cls._spawn({"op": "open", "home": str(home), "run_id": run_id, "settings": settings})

    @classmethod
    def _spawn(cls, request):
        ours, theirs = socket.socketpair()
        env = {**one_blas_thread(dict(os.environ)),  # one BLAS thread per run unless the user says otherwise
               "PYTHONPATH": os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH"))))}
        try:  # in the server's folder, where a config's relative CSV path points
            process = subprocess.Popen([sys.executable, "-m", "babysit.worker", str(theirs.fileno())],
                                       pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        try:
            conn.send_bytes(wire.encode({"n": 0, **request}))
            reply = _receive(conn, 0, OPEN_TIMEOUT, process)
        except BaseException as error:
            conn.close()
            process.kill()
            code = process.wait()
            if isinstance(error, (EOFError, OSError)):  # it died starting: its traceback is in the server's log
                raise WorkerError(f"the process for the run could not start (exit code {code}); "
                                  "the server's log says why") from None
            raise
        if "error" in reply:
            process.wait(timeout=30)
            conn.close()
            raise _rebuild_error(reply["error"])
        return cls(process, conn, reply["value"])

    # -- asking the process -------------------------------------------------------------------------

    def _ask(self, op, timeout=REPLY_TIMEOUT, **args):
        with self._lock:
            if self._closed:
                raise WorkerError(f"run {self.run_id} is closed")
            number = next(self._numbers)
            try:
                self._conn.send_bytes(wire.encode({"n": number, "op": op, **args}))
                reply = _receive(self._conn, number, timeout, self._process)
            except (EOFError, OSError) as error:
                raise WorkerError(self._gone(error)) from None
        if "error" in reply:
            raise _rebuild_error(reply["error"])
        return reply["value"]

    def _gone(self, error):
        code = self._process.poll()
        if code is None:
            return f"the process training run {self.run_id} stopped answering ({error})"
        return (f"the process training run {self.run_id} ended unexpectedly (exit code {code}); "
                "open the run again to resume it from its newest checkpoint")

    # -- what the pages and the manager use of a Session ------------------------------------------------

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        self._ask("rename", name=name)
        self._name = name

    @property
    def status(self):
        return self._ask("state")["status"]

    def training(self):
        return self._ask("state")["training"]

    @property
    def alive(self):
        """Whether the run's process is there to answer (a stopped run's process waits for commands)."""
        return not self._closed and self._process.poll() is None

    def start_thread(self):
        """The process starts its run's thread itself; kept so the manager treats both kinds alike."""

    def snapshot(self):
        return self._ask("snapshot")

    def snapshot_pending(self):
        return self._ask("pending")

    def hyperparameters(self):
        return self._ask("hyperparameters")

    def plot_data(self):
        if self._plot_data is None:  # the data set never changes during a run
            self._plot_data = self._ask("plot_data")
        return self._plot_data

    def predict(self, X):
        return self._ask("predict", X=X)

    def submit(self, kind, source="user", **args):
        return RemoteCommand(self, self._ask("submit", kind=kind, source=source, args=args))

    def set(self, source="user", **changes):
        return self.submit("set", source=source, changes=changes)

    def accept_guardrail(self, lower_alpha=False):
        return RemoteCommand(self, self._ask("accept_guardrail", lower_alpha=lower_alpha))

    def close(self, timeout=10, interrupted=False):
        """Stop the run (checkpointed and flushed), and its process with it."""
        if self._closed:
            return
        try:
            if self._process.poll() is None:
                self._ask("close", timeout=timeout + 5, interrupted=interrupted, wait=timeout)
        except WorkerError:
            pass
        finally:
            with self._lock:
                self._closed = True
                self._conn.close()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _receive(conn, number, timeout, process):
    """The reply to request ``number``; a late reply to an earlier request is dropped."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not conn.poll(left):
            if process.poll() is not None:
                raise EOFError("the process has ended")
            raise WorkerError(f"the process training the run did not answer within {timeout:.0f} s")
        reply = wire.decode(conn.recv_bytes())
        if reply.get("n") == number:
            return reply


def _rebuild_error(d):
    cls = ERRORS.get(d["type"])
    if cls is ConfigError:
        return ConfigError(d["problems"])
    if cls is not None:
        return cls(d["message"])
    return WorkerError(f"{d['type']}: {d['message']}")


def _error_dict(error):
    return {"type": type(error).__name__, "message": str(error),
            "problems": list(getattr(error, "problems", None) or [str(error)])}


# -- the training process --------------------------------------------------------------------------


class _Worker:
    """The training process's side: one Session, and the commands sent to it, by id."""

    KEPT = 1000  # applied commands whose results were never asked for are forgotten past this many

    def __init__(self, session):
        self.session = session
        self.commands = collections.OrderedDict()

    def handle(self, request):
        op = request["op"]
        session = self.session
        if op == "state":
            return {"status": session.status, "training": session.training()}
        if op == "snapshot":
            return session.snapshot()
        if op == "pending":
            return tuple(_portable(c) for c in session.snapshot_pending())
        if op == "hyperparameters":
            return session.hyperparameters()
        if op == "plot_data":
            return session.plot_data()
        if op == "predict":
            return session.predict(request["X"])
        if op == "rename":
            session.name = request["name"]
            return None
        if op == "submit":
            return self._keep(session.submit(request["kind"], source=request["source"], **request["args"]))
        if op == "accept_guardrail":
            return self._keep(session.accept_guardrail(request["lower_alpha"]))
        if op == "result":
            return self._result(request["id"])
        raise wire.WireError(f"unknown request {op!r}")

    def _keep(self, command):
        self.commands[command.id] = command
        while len(self.commands) > self.KEPT:
            self.commands.popitem(last=False)
        return _portable(command)

    def _result(self, command_id):
        command = self.commands.get(command_id)
        if command is None:
            return {"done": True, "value": None}
        future = command.future
        if not future.done():
            return {"done": False}
        del self.commands[command_id]
        if future.cancelled():
            return {"done": True, "cancelled": True}
        if future.exception() is not None:
            return {"done": True, "error": _error_dict(future.exception())}
        value = future.result()
        try:
            wire.encode(value)
        except wire.WireError:
            value = None  # a result the page has no use for (say, an object only the process holds)
        return {"done": True, "value": value}


def _portable(command):
    return dataclasses.replace(command, future=None)  # its future stays here


class _Terminated(BaseException):  # not an Exception: a request being handled must not swallow it
    pass


def _terminated(signum, frame):
    raise _Terminated()


def _nice():
    """How much lower the training thread's priority is than the server's (BABYSIT_RUN_NICE). Only the
    training thread is lowered: the process's main thread answers the page's requests (snapshots, the
    decision boundary) at the server's priority, so a page does not wait on a starved run."""
    try:
        return min(max(int(os.environ.get("BABYSIT_RUN_NICE", NICE)), 0), 19)
    except ValueError:
        return NICE


def main(fd):
    """Serve one run over the socket ``fd`` until the server closes it or goes away."""
    from babysit.session import Session, SessionSettings
    from babysit.store import Store

    nice = _nice()
    if not sys.platform.startswith("linux"):  # elsewhere a nice value is the whole process's, not a thread's
        try:
            os.nice(nice)
        except OSError:
            pass
        nice = 0
    # a Ctrl-C in the server's terminal reaches its whole process group: the server stops its runs itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    conn = Connection(fd)
    worker = None
    try:
        request = wire.decode(conn.recv_bytes())
        try:
            store = Store(request["home"])
            settings = dataclasses.replace(request["settings"] or SessionSettings(), thread_nice=nice)
            if request["op"] == "create":
                session = Session.create(store, request["config"], request["name"], settings)
            else:
                session = Session.open(store, request["run_id"], settings)
        except Exception as error:
            conn.send_bytes(wire.encode({"n": 0, "error": _error_dict(error)}))
            return
        session.start_thread()
        worker = _Worker(session)
        conn.send_bytes(wire.encode({"n": 0, "value": {
            "run_id": session.run_id, "name": session.name, "parent": session.parent,
            "fork_step": session.fork_step, "interrupted": session.interrupted}}))
        while True:
            request = wire.decode(conn.recv_bytes())
            if request["op"] == "close":
                session.close(timeout=request["wait"], interrupted=request["interrupted"])
                conn.send_bytes(wire.encode({"n": request["n"], "value": None}))
                return
            try:
                reply = {"n": request["n"], "value": worker.handle(request)}
                blob = wire.encode(reply)
            except Exception as error:  # the server's request failed: say why, keep serving
                blob = wire.encode({"n": request["n"], "error": _error_dict(error)})
            conn.send_bytes(blob)
    except (EOFError, OSError, _Terminated):  # the server is gone: keep the run, to resume when next opened
        if worker is not None:
            worker.session.close(interrupted=True)
    finally:
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))

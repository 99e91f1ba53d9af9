"""The sessions one server keeps, by run id.

Runs live here, not in a browser tab: a run keeps training when its tab closes, and any tab that
names its id attaches to the same session. When the server starts, runs that were training when the
previous one died are found (the store's recovery) and resume from their newest checkpoint as soon
as they are opened. ``max_running`` caps how many train at once (BABYSIT_MAX_RUNNING, default 8).

Each run trains in a process of its own (``babysit.worker``), so that training never holds up the
pages; ``processes=False`` (or BABYSIT_RUN_IN=thread) keeps them as threads of this process instead,
which tests that look inside a session use. A run whose process has died is reopened from the store.
"""

import os
import threading

from babysit.errors import BabysitError
from babysit.session import STARTING, Session, SessionSettings
from babysit.store import Store
from babysit.worker import RemoteSession, WorkerError


class CapError(BabysitError):
    """Too many runs training at once."""


class SessionManager:
    def __init__(self, store=None, max_running=None, settings=None, processes=None):
        self.store = store or Store()
        self.max_running = max_running or int(os.environ.get("BABYSIT_MAX_RUNNING", "8"))
        self.settings = settings or SessionSettings()
        if processes is None:
            processes = os.environ.get("BABYSIT_RUN_IN", "process") != "thread"
        self.processes = processes
        self._sessions = {}
        self._lock = threading.RLock()
        self.store.recover()

    def create(self, config, name=None):
        """A new run, its process (or thread) started and waiting for a start command; returns its id."""
        if self.processes:
            session = RemoteSession.create(self.store.home, config, name, self.settings)
        else:
            session = Session.create(self.store, config, name, self.settings)
            session.start_thread()
        with self._lock:
            self._sessions[session.run_id] = session
        return session.run_id

    def get(self, run_id):
        """The run's live session, opening it from the store if this server has not yet (StoreError if
        there is no such run). A run interrupted while training resumes, room permitting."""
        with self._lock:
            session = self._sessions.get(run_id)
            if session is not None and self.processes and not session.alive:
                del self._sessions[run_id]  # its process died: the store has the run up to its last flush
                self.store.recover()
                session = None
            if session is None:
                if self.processes:
                    session = RemoteSession.open(self.store.home, run_id, self.settings)
                else:
                    session = Session.open(self.store, run_id, self.settings)
                    session.start_thread()
                self._sessions[run_id] = session
                if session.interrupted and len(self.training()) < self.max_running:
                    session.interrupted = False
                    session.submit("resume", source="system")
            return session

    def has(self, run_id):
        """Whether this server has the run open (``get`` would not have to open it from the store)."""
        with self._lock:
            return run_id in self._sessions

    def training(self):
        """Ids of runs training now or about to (a start command waiting)."""
        with self._lock:
            return [run_id for run_id, s in self._sessions.items() if _training(s)]

    def command(self, run_id, kind, **args):
        """Send a command to a run, refusing a start past the cap with a message that says what to do."""
        with self._lock:
            session = self.get(run_id)
            if kind in STARTING and session.status != "running" and len(self.training()) >= self.max_running:
                runs = "run is" if self.max_running == 1 else "runs are"
                raise CapError(
                    f"{self.max_running} {runs} training already, the most this server allows at once "
                    "(BABYSIT_MAX_RUNNING): pause or stop one first"
                )
            return session.submit(kind, **args)

    def rename(self, run_id, name):
        name = str(name).strip()
        if not name:
            raise BabysitError("a run's name cannot be empty")
        self.store.update_run(run_id, name=name)
        with self._lock:
            if run_id in self._sessions:
                self._sessions[run_id].name = name

    def delete(self, run_id):
        """Stop the run's session, if open, and remove it from the store with its checkpoints."""
        with self._lock:
            session = self._sessions.pop(run_id, None)
        if session is not None:
            session.close()
        self.store.delete_run(run_id)

    def close_all(self):
        """The server is stopping: every run is checkpointed and flushed; those training come back
        training when the next server opens them, as after a crash, but with nothing to retrain."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close(interrupted=True)


def _training(session):
    try:
        return session.training()
    except WorkerError:  # its process has died: it trains nothing
        return False


class StudyManager:
    """The caviar studies one server runs, each in a thread of its own driving a Dask client.

    The embedded LocalCluster is made once, on the first study that needs it, and kept: starting
    worker processes takes seconds. A study on a named scheduler gets a client of its own.
    """

    def __init__(self, store):
        self.store = store
        self._threads = {}
        self._progress = {}
        self._errors = {}
        self._local = None
        self._lock = threading.Lock()
        self.store.recover_studies()

    def _client(self, scheduler):
        from babysit.caviar import make_client

        if scheduler or os.environ.get("BABYSIT_DASK_SCHEDULER"):
            return make_client(scheduler), True
        with self._lock:
            if self._local is None:
                self._local = make_client()
            return self._local, False

    def start(self, study_id, scheduler=None):
        """Run (or resume) a study in the background; a study already running is left alone."""
        from babysit import caviar

        with self._lock:
            thread = self._threads.get(study_id)
            if thread is not None and thread.is_alive():
                return
            self._errors.pop(study_id, None)

        def work():
            try:
                client, own = self._client(scheduler)
                try:
                    caviar.run_study(self.store, study_id, client=client,
                                     on_progress=lambda p: self._progress.__setitem__(study_id, p))
                finally:
                    if own:
                        client.close()
            except Exception as error:  # recorded for the page; the study's status says failed
                self._errors[study_id] = f"{type(error).__name__}: {error}"

        thread = threading.Thread(target=work, name=f"babysit-study-{study_id}", daemon=True)
        with self._lock:
            self._threads[study_id] = thread
        thread.start()

    def running(self, study_id):
        thread = self._threads.get(study_id)
        return thread is not None and thread.is_alive()

    def progress(self, study_id):
        return self._progress.get(study_id)

    def error(self, study_id):
        return self._errors.get(study_id)

    def close(self):
        for thread in list(self._threads.values()):
            thread.join(timeout=1)
        if self._local is not None:
            from babysit.caviar import close_client

            close_client(self._local)

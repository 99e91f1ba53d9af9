"""Locked down: what the server exposes, what it reads as code, what paths an id or a name can reach.

- the server listens on 127.0.0.1 only (its sockets, read from /proc), and so does the embedded Dask cluster,
  whose protocol is pickle: reachable from a network, it would run anyone's code;
- .streamlit/config.toml keeps XSRF protection on (and the running server enforces it), usage stats off,
  an upload cap, no error details in the page;
- nothing is unpickled, evaluated or executed: not in the package's source, not from a checkpoint file;
- run and study ids are checked before any use, so none names a path outside the store;
- an exported archive's entries are named by the run id alone;
- a config's strings are data, never code.
"""

import ast
import hashlib
import http.cookiejar
import importlib.util
import json
import os
import re
import socket
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from babysit import caviar
from babysit.config import RunConfig, parse_config
from babysit.errors import BabysitError, ConfigError
from babysit.events import Event
from babysit.export import BUNDLE_FILES
from babysit.manager import SessionManager
from babysit.session import Session
from babysit.space import parse_space
from babysit.store import METRIC_FIELDS, Store, StoreError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
CONFIG = parse_config('{"data": {"name": "moons", "n_samples": 200}, "hyperparameters": {"mini_batch_size": 32}}')
GOOD_ID = "0123456789ab"
BAD_IDS = [
    "../x", "/etc/passwd", "..", "a/b", "", "0123456789ab/../..", "../../etc",
    "０１２３４５６７８９ａｂ",  # fullwidth digits and letters
    "0123456789аb",  # a Cyrillic а
    "0123456789ab\n",  # a regular expression's $ matches before a final newline
    "0123456789ab\x00", "0123456789AB", "0123456789abc", " 0123456789ab", None, 123456789012,
]


def _load_e2e_server():
    """tests/e2e/conftest.py's Server (a real `streamlit run app.py`), loaded by path: it is no package."""
    spec = importlib.util.spec_from_file_location("babysit_e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Server


# -- the network -----------------------------------------------------------------------------------


def listening_sockets():
    """{inode: (family, address, port)} of every TCP socket in LISTEN state on this machine (/proc/net/tcp*)."""
    found = {}
    for family in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{family}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state != "0A":  # TCP_LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            family_ = socket.AF_INET if family == "tcp" else socket.AF_INET6
            found[inode] = (family, socket.inet_ntop(family_, raw), int(port, 16))
    return found


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def listening_of(pids):
    every = listening_sockets()
    return sorted({every[i] for pid in pids for i in socket_inodes(pid) if i in every})


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    Server = _load_e2e_server()
    srv = Server(tmp_path_factory.mktemp("locked-home"), tmp_path_factory.mktemp("locked-logs"))
    srv.start()
    yield srv
    srv.stop()


class TestNetwork:
    def test_the_server_listens_on_127_0_0_1_only(self, server):
        sockets = listening_of([server.process.pid])
        assert sockets, "the server holds no listening socket"
        assert ("tcp", "127.0.0.1", server.port) in sockets
        assert all(address in LOOPBACK for _, address, _ in sockets), sockets  # never 0.0.0.0 nor ::
        on_port = [s for s in listening_sockets().values() if s[2] == server.port]
        assert on_port == [("tcp", "127.0.0.1", server.port)]

    def test_the_embedded_dask_cluster_listens_on_127_0_0_1_only(self):
        client = caviar.make_client()
        try:
            cluster = client.cluster
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
            workers = client.scheduler_info()["workers"]
            assert workers and all(address.startswith("tcp://127.0.0.1:") for address in workers)
            pids = [os.getpid(), *client.run(os.getpid).values()]
            sockets = listening_of(pids)
            assert sockets and all(address in LOOPBACK for _, address, _ in sockets), sockets
        finally:
            client.close()
            cluster.close()


class TestStreamlitConfig:
    def test_the_config_file_keeps_the_server_locked_down(self):
        with open(ROOT / ".streamlit" / "config.toml", "rb") as f:
            config = tomllib.load(f)
        server = config["server"]
        assert server["address"] == "127.0.0.1"
        assert server["enableXsrfProtection"] is True
        assert server["enableCORS"] is True
        assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 1000  # MB
        assert config["browser"]["gatherUsageStats"] is False
        assert config["client"]["showErrorDetails"] == "none"

    def test_the_running_server_refuses_an_upload_without_the_xsrf_token(self, server):
        """Uploads go to PUT /_stcore/upload_file/<session>/<file>: without the XSRF cookie and its token in
        the X-Xsrftoken header, 403, before the session is even looked up. With them (taken from the
        server's own cookie), the same request gets as far as the session check (400, no such session):
        the 403 was the XSRF check. (A POST there is 405, method not allowed: it would prove nothing.)"""
        url = f"{server.url}_stcore/upload_file/no-such-session/file-1"
        boundary = "locked-down"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--{boundary}--\r\n").encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

        def put(opener, extra=None):
            request = urllib.request.Request(url, data=body, method="PUT", headers={**headers, **(extra or {})})
            try:
                with opener.open(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        assert put(urllib.request.build_opener()) == 403
        assert put(urllib.request.build_opener(), {"X-Xsrftoken": "2|00000000|00000000|0"}) == 403

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{server.url}_stcore/health", timeout=10) as response:
            assert response.read() == b"ok"
        token = {c.name: c.value for c in jar}.get("_streamlit_xsrf")
        assert token, "the server set no XSRF cookie"
        assert put(opener) == 403  # the cookie alone is not enough
        assert put(opener, {"X-Xsrftoken": token}) == 400  # past the XSRF check: no such session

    def test_the_live_charts_route_reads_only_open_runs_by_their_id(self, server):
        """`streamlit run app.py` serves the route the live charts fetch from (babysit/ui/live_feed.py): a
        run id that is one but names no open run is a 404; anything else is refused before a look at the
        store, and no path reaches a file. It takes GET only: it changes nothing."""
        def get(path, method="GET"):
            request = urllib.request.Request(f"{server.url}{path}", method=method)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        code, body = get("babysit/live/0123456789ab/cost")
        assert code == 404 and json.loads(body)["problem"].startswith("run 0123456789ab is not open on this server")
        for bad in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "0123456789AB"):
            code, body = get(f"babysit/live/{bad}/cost")
            # Streamlit's own path check may answer first (a plain 400), or the decoded path may match no
            # route and get the app's page; never a file, never a feed.
            assert b"root:" not in body and b'"drawn"' not in body, (bad, code, body)
            assert code == 400 or (code == 200 and body.lstrip().startswith(b"<")), (bad, code, body)
            if body.startswith(b"{"):
                assert "is not a run id" in json.loads(body)["problem"], (bad, body)
        code, body = get("babysit/live/0123456789AB/cost")
        assert "is not a run id" in json.loads(body)["problem"]
        for bad in ("babysit/live/../../../../etc/passwd", "babysit/live/0123456789ab/../../../etc/passwd"):
            code, body = get(bad)
            assert code in (400, 404) and b"root:" not in body, (bad, code, body)
        assert get("babysit/live/0123456789ab/cost", method="POST")[0] == 405


# -- nothing unpickled, evaluated or executed ----------------------------------------------------------

SOURCES = sorted([*(ROOT / "babysit").rglob("*.py"), *(ROOT / "models").rglob("*.py"), ROOT / "app.py"])
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def unsafe_calls(path):
    """What in a source file could turn data into code: eval/exec/compile, pickle-like modules, np.load
    without allow_pickle=False, allow_pickle=True anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where} imports {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle" and not (
                isinstance(node.value, ast.Constant) and node.value.value is False):
            found.append(f"{where} allow_pickle={ast.unparse(node.value)}")
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func in ("eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"):
            found.append(f"{where} calls {func}")
        if func.split(".")[-1] in ("load", "loads") and func.split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where} calls {func}")
        if func in ("np.load", "numpy.load"):
            safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                       for k in node.keywords)
            if not safe:
                found.append(f"{where} calls {func} without allow_pickle=False")
        if func.endswith(("read_pickle", "import_module")):
            found.append(f"{where} calls {func}")
    return found


class TestNoCodeFromData:
    def test_the_sources_are_found(self):
        names = {p.name for p in SOURCES}
        assert {"store.py", "session.py", "snippets.py", "export.py", "app.py", "mlp.py"} <= names

    def test_nothing_in_the_package_unpickles_evaluates_or_executes(self):
        found = [line for path in SOURCES for line in unsafe_calls(path)]
        assert found == []
        # the np.load calls there are (the store's checkpoints, export's weights) all say allow_pickle=False
        loads = sorted(p.name for p in SOURCES for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                       if isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.load", "numpy.load"))
        assert loads == ["export.py", "store.py"]
        # and, as plain text, whatever the AST might miss (a string handed to something else, say)
        text = " ".join(p.read_text(encoding="utf-8") for p in SOURCES)
        assert not re.search(r"allow_pickle\s*=\s*True|pickle\.loads?\(|\beval\(|\bexec\(", text)

    def test_the_snippets_are_code_text_never_run(self):
        """snippets.py writes PyTorch and Keras code for the user to copy: it makes strings, and neither
        compiles nor runs them (the AST scan above finds no exec, eval or compile call in it; its
        "model.compile(" is inside the Keras snippet's text)."""
        from babysit import snippets

        source = (ROOT / "babysit" / "snippets.py").read_text(encoding="utf-8")
        assert unsafe_calls(ROOT / "babysit" / "snippets.py") == []
        assert "model.compile(" in source
        text = snippets.keras_snippet(CONFIG, source="0123456789ab")
        assert isinstance(text, str) and "model.compile(" in text

    def test_a_checkpoint_holding_an_object_array_is_refused_never_unpickled(self, tmp_path):
        store = Store(home=tmp_path / "store")
        canary = tmp_path / "unpickled"
        try:
            session = Session.create(store, CONFIG)
            session.close()
            (checkpoint,) = store.checkpoints(session.run_id)
            state = store.read_state(checkpoint.file)
            # the same checkpoint, its weights replaced by an object array whose pickle creates the canary
            evil = np.empty(1, dtype=object)
            evil[0] = Touch(str(canary))
            path = os.path.join(store.home, checkpoint.file)
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            arrays["params"] = evil
            os.remove(path)
            np.savez(path.removesuffix(".npz"), **arrays)  # np.savez pickles object arrays by default
            assert os.path.exists(path)
            assert state["step"] == 0

            with pytest.raises(ValueError, match="allow_pickle=False"):
                store.read_state(checkpoint.file)
            with pytest.raises(StoreError, match="cannot be read"):
                store.load_checkpoint(checkpoint)
            with pytest.raises(StoreError, match="no checkpoint can be read"):
                Session.open(store, session.run_id)
            assert not canary.exists()
            # and the file is what the test meant: unpickling it would have made the canary
            with np.load(path, allow_pickle=True) as npz:
                npz["params"]
            assert canary.exists()
        finally:
            store.close()


class Touch:
    """Unpickling this calls Path(path).touch(): the proof an unpickling happened."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# -- ids never reach a path -------------------------------------------------------------------------------


def _columns():
    return {f: np.array([1.0]) for f in METRIC_FIELDS}


def id_calls(store, state):
    """Every Store method that takes a run or study id: (name, call with the id)."""
    return [
        ("get_run", lambda i: store.get_run(i)),
        ("owner", lambda i: store.owner(i)),
        ("update_run", lambda i: store.update_run(i, name="x")),
        ("delete_run", lambda i: store.delete_run(i)),
        ("events", lambda i: store.events(i)),
        ("add_event", lambda i: store.add_event(i, Event("start", 0))),
        ("undo_events_after", lambda i: store.undo_events_after(i, 0)),
        ("add_metrics", lambda i: store.add_metrics(i, _columns())),
        ("metrics", lambda i: store.metrics(i)),
        ("truncate_metrics", lambda i: store.truncate_metrics(i, 0)),
        ("copy_history from", lambda i: store.copy_history(i, GOOD_ID, 10)),
        ("copy_history to", lambda i: store.copy_history(state["run_id"], i, 10)),
        ("add_health", lambda i: store.add_health(i, [(1, {"x": [1.0]})])),
        ("health", lambda i: store.health(i)),
        ("save_checkpoint", lambda i: store.save_checkpoint(i, state["state"], "x")),
        ("checkpoints", lambda i: store.checkpoints(i)),
        ("delete_checkpoints_after", lambda i: store.delete_checkpoints_after(i, 0)),
        ("add_retest", lambda i: store.add_retest(i, {})),
        ("retests", lambda i: store.retests(i)),
        ("create_run parent", lambda i: store.create_run(CONFIG, parent=i)),
        ("get_study", lambda i: store.get_study(i)),
        ("update_study", lambda i: store.update_study(i, name="x")),
        ("add_trials", lambda i: store.add_trials(i, [(0, {}, {})])),
        ("trials", lambda i: store.trials(i)),
        ("update_trial", lambda i: store.update_trial(i, 0, status="done")),
        ("delete_study", lambda i: store.delete_study(i)),
        ("create_study parent", lambda i: store.create_study({}, 0, {}, parent=i)),
    ]


def tree(folder):
    """{path: (size, mtime, sha256)} of every file under ``folder``."""
    out = {}
    for path in Path(folder).rglob("*"):
        if path.is_file():
            stat = path.stat()
            out[str(path)] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


class TestIds:
    def test_every_store_method_refuses_what_is_not_an_id_and_touches_nothing_outside(self, tmp_path):
        home, outside = tmp_path / "home", tmp_path / "outside"
        outside.mkdir()
        (outside / "canary.txt").write_text("canary")
        (outside / "checkpoints").mkdir()
        store = Store(home=home)
        try:
            session = Session.create(store, CONFIG)
            session.close()
            run_id = session.run_id
            study_id = store.create_study({}, 0, {})
            state = {"run_id": run_id, "state": store.read_state(store.checkpoints(run_id)[0].file)}
            ids = [*BAD_IDS, "../outside", "../outside/canary.txt", str(outside / "canary.txt"),
                   f"{run_id}/../../outside"]
            before_outside = tree(outside)
            before_home = {p for p in tree(home) if not p.endswith(("-wal", "-shm", ".db"))}
            passwd = os.stat("/etc/passwd")
            calls = id_calls(store, state)
            let_through = []
            for name, call in calls:
                for bad in ids:
                    if bad is None and name.endswith("parent"):
                        continue  # parent=None: a run or study of no parent
                    try:
                        call(bad)
                    except StoreError as error:
                        assert "is not a run id" in str(error), (name, bad, error)
                    except Exception as error:  # refused, but not as a StoreError that says why
                        let_through.append((name, bad, f"{type(error).__name__}: {error}"))
                    else:
                        let_through.append((name, bad, "accepted"))
            assert let_through == []
            assert tree(outside) == before_outside
            after_home = {p for p in tree(home) if not p.endswith(("-wal", "-shm", ".db"))}
            assert after_home == before_home  # no file or folder named after a bad id, inside either
            assert sorted(os.listdir(home / "checkpoints")) == [run_id]
            assert os.stat("/etc/passwd").st_mtime_ns == passwd.st_mtime_ns
            # the good ids still work, and the database holds no row keyed by a bad id
            assert store.get_run(run_id).id == run_id and store.get_study(study_id).id == study_id
            db = store._db
            for table in ("events", "metrics", "health", "checkpoints", "retests"):
                assert {r[0] for r in db.execute(f"SELECT DISTINCT run_id FROM {table}")} <= {run_id}, table
            assert {r[0] for r in db.execute("SELECT DISTINCT study_id FROM trials")} <= set()
            assert [r[0] for r in db.execute("SELECT parent FROM runs")] == [None]
        finally:
            store.close()

    @pytest.fixture
    def page(self, babysit_home):
        st.cache_resource.clear()
        yield
        from babysit.ui.state import manager

        manager().close_all()
        manager().store.close()
        st.cache_resource.clear()

    @pytest.mark.parametrize("bad", ["../../etc", "/etc/passwd", "0123456789ab/../..", "０１２３４５６７８９ａｂ",
                                     "0123456789ab\n"])
    def test_the_babysit_page_says_a_bad_run_link_is_no_run(self, page, bad):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["run"] = bad
        at.run()
        assert not at.exception
        assert len(at.error) == 1 and "names no run that can be opened" in at.error[0].value
        assert "is not a run id" in at.error[0].value and "Traceback" not in at.error[0].value

    @pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "0123456789ab\n"])
    def test_the_caviar_page_says_a_bad_study_link_is_no_study(self, page, bad):
        at = AppTest.from_string(CAVIAR_APP, default_timeout=60)
        at.query_params["study"] = bad
        at.run()
        assert not at.exception
        assert len(at.error) == 1 and "names no study that can be opened" in at.error[0].value
        assert "is not a run id" in at.error[0].value and "Traceback" not in at.error[0].value

    def test_a_bad_study_link_beside_real_studies_opens_nothing(self, page, babysit_home):
        """With studies in the store (the page's study picker shown), a bad link still opens nothing: the page
        says so, or drops the link."""
        store = Store()
        try:
            store.create_study({}, 0, {})
        finally:
            store.close()
        at = AppTest.from_string(CAVIAR_APP, default_timeout=60)
        at.query_params["study"] = "/etc/passwd"
        at.run()
        assert not at.exception
        if "study" in at.query_params:
            assert len(at.error) == 1 and "is not a run id" in at.error[0].value
        assert not at.subheader or all("passwd" not in h.value for h in at.subheader)


CAVIAR_APP = """
import streamlit as st
from babysit.ui import caviar_page

st.navigation([st.Page(caviar_page.render, title="Caviar", url_path="caviar", default=True)]).run()
"""


# -- exported archives --------------------------------------------------------------------------------------


class TestExport:
    @pytest.mark.parametrize("name", ["../../../tmp/evil", "/etc/passwd", "a/b\\c", "ünïcødé ⑂ 名前 ../",
                                      "..", "\u202egnp.exe"])
    def test_the_bundle_holds_the_six_files_under_the_run_id_whatever_the_name(self, tmp_path, name):
        from babysit.ui.babysit_page import bundle_zip

        home = tmp_path / "home"
        manager = SessionManager(Store(home=home))
        try:
            run_id = manager.create(CONFIG, name=name)
            manager.command(run_id, "step", n=30).result(timeout=30)
            session = manager.get(run_id)
            deadline = time.monotonic() + 30
            while session.snapshot().status != "paused" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert manager.store.get_run(run_id).name == name  # kept as given, as a plain string
            before = set(os.listdir(tmp_path))
            archive = zipfile.ZipFile(BytesIO(bundle_zip(manager, run_id)))
            names = archive.namelist()
            assert sorted(names) == sorted(f"{run_id}/{f}" for f in BUNDLE_FILES)
            for info in archive.infolist():
                assert not info.is_dir() and not info.filename.startswith("/") and ".." not in info.filename
            assert json.loads(archive.read(f"{run_id}/config.json"))["data"]["name"] == "moons"
            assert set(os.listdir(tmp_path)) == before  # nothing written beside the store
            assert not [n for n in os.listdir(home) if n.startswith(".export-")]  # its temporary folder is gone
        finally:
            manager.close_all()
            manager.store.close()


# -- config strings are data -------------------------------------------------------------------------------


def payload(canary):
    return f"__import__('os').system('touch {canary}')"


def with_value(d, dotted, value):
    d = json.loads(json.dumps(d))
    *path, last = dotted.split(".")
    node = d
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    return d


BASE = {"seed": 0, "data": {"name": "moons", "n_samples": 200},
        "model": {"layers": [4], "activation": "relu", "lambd": 0.0, "dtype": "float64"},
        "hyperparameters": {"optimizer": "adam", "alpha": 0.01, "mini_batch_size": 32, "decay_schedule": "none"}}
FIELDS = ["data.name", "model.activation", "model.dtype", "hyperparameters.optimizer",
          "hyperparameters.decay_schedule", "hyperparameters.alpha", "hyperparameters.beta",
          "hyperparameters.mini_batch_size", "model.lambd", "model.layers", "seed", "data.noise",
          "data.n_samples", "data.dev_fraction", "data.standardize"]


class TestConfigStringsAreData:
    @pytest.mark.parametrize("field", FIELDS)
    def test_code_in_a_config_field_is_refused(self, tmp_path, field):
        canary = tmp_path / "pwned"
        text = json.dumps(with_value(BASE, field, payload(canary)))
        with pytest.raises(ConfigError, match=re.escape(field.split(".")[-1])):
            parse_config(text)
        with pytest.raises(ConfigError):
            RunConfig.from_dict(json.loads(text))
        assert not canary.exists()

    def test_code_in_a_schedule_or_a_csv_path_is_refused_or_a_plain_path(self, tmp_path):
        canary = tmp_path / "pwned"
        code = payload(canary)
        with pytest.raises(ConfigError):
            parse_config(json.dumps({**BASE, "schedule": [{"step": 5, "set": {"alpha": code}}]}))
        with pytest.raises(ConfigError):
            parse_config(json.dumps({**BASE, "schedule": [{"step": code, "set": {"alpha": 0.1}}]}))
        # a CSV's path and target are strings by nature: kept as given, and a path that is not a file is refused
        config = parse_config(json.dumps({**BASE, "data": {"csv": code, "target": code}}))
        assert config.data.csv == code and config.data.target == code
        store = Store(home=tmp_path / "store")
        try:
            with pytest.raises(BabysitError):
                Session.create(store, config)
            assert store.list_runs() == []
        finally:
            store.close()
        assert not canary.exists()

    def test_code_as_a_run_name_is_a_plain_string(self, tmp_path):
        canary = tmp_path / "pwned"
        store = Store(home=tmp_path / "store")
        try:
            session = Session.create(store, CONFIG, name=payload(canary))
            session.close()
            assert store.get_run(session.run_id).name == payload(canary)
            assert Session.open(store, session.run_id).name == payload(canary)
        finally:
            store.close()
        assert not canary.exists()

    def test_code_in_a_live_change_or_a_search_space_is_refused(self, tmp_path):
        canary = tmp_path / "pwned"
        code = payload(canary)
        store = Store(home=tmp_path / "store")
        try:
            session = Session.create(store, CONFIG)
            for name in ("alpha", "optimizer", "decay_schedule", "mini_batch_size"):
                with pytest.raises(ConfigError):
                    session.set(**{name: code})
            assert session.snapshot().pending == ()
            session.close()
        finally:
            store.close()
        for space in ({"optimizer": {"choice": ["adam", code]}}, {"activation": {"choice": [code]}},
                      {"alpha": {"log_uniform": [code, 0.1]}}, {"alpha": {code: [0.001, 0.1]}},
                      {code: {"uniform": [0, 1]}}, {"alpha": {"log_uniform": [0.001, 0.1]},
                                                    "base": {"model": {"activation": code}}}):
            with pytest.raises(ConfigError):
                parse_space(json.dumps(space))
        assert not canary.exists()

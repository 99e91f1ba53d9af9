"""The live charts' frame: the folder Streamlit serves it from holds the page and the installed plotly.js."""

import importlib.resources
import os

from babysit.ui import live_chart

PLOTLY_JS = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"


def contents(path):
    with open(path, "rb") as f:
        return f.read()


def assert_serves_the_chart(folder):
    assert sorted(os.listdir(folder)) == ["index.html", "plotly.min.js"]
    assert contents(os.path.join(folder, "index.html")) == contents(live_chart.PAGE)
    assert contents(os.path.join(folder, "plotly.min.js")) == PLOTLY_JS.read_bytes()


def test_the_folder_is_made_once_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = live_chart._frontend()
    assert os.path.dirname(folder) == str(tmp_path / "babysit")
    assert_serves_the_chart(folder)
    made = os.stat(os.path.join(folder, "plotly.min.js")).st_mtime_ns
    assert live_chart._frontend() == folder
    assert os.stat(os.path.join(folder, "plotly.min.js")).st_mtime_ns == made
    assert os.listdir(tmp_path / "babysit") == [os.path.basename(folder)]  # no staging folder left behind


def test_without_a_writable_cache_the_chart_still_has_a_folder(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    folder = live_chart._frontend()
    assert not folder.startswith(str(not_a_folder))
    assert_serves_the_chart(folder)


def test_a_folder_cut_short_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = live_chart._frontend()
    os.remove(os.path.join(folder, "plotly.min.js"))  # a folder emptied by hand, or by a cache cleaner
    assert live_chart._frontend() == folder
    assert_serves_the_chart(folder)
    assert os.listdir(tmp_path / "babysit") == [os.path.basename(folder)]

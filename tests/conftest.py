import pytest


@pytest.fixture(autouse=True)
def babysit_home(tmp_path_factory, monkeypatch):
    """Every test gets its own store folder: nothing is written into the repository's runs/."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BABYSIT_HOME", str(home))
    return home

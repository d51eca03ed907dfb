import pytest

from ecohash.errors import SiteNotFoundError
from ecohash.paths import resolve_site, state_dir


@pytest.fixture
def roots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path / "state"))
    for root, name in (("inventories", "local"), ("state/inventories", "lab"), ("extra", "local")):
        (tmp_path / root / name).mkdir(parents=True)
        (tmp_path / root / name / "site.yaml").write_text(root)
    return tmp_path


def test_names_resolve_in_order(roots, monkeypatch):
    assert resolve_site("local").read_text() == "inventories"
    assert resolve_site("lab").read_text() == "state/inventories"
    monkeypatch.setenv("ECOHASH_INVENTORIES", str(roots / "extra"))
    assert resolve_site("local").read_text() == "extra"


def test_paths_and_directories(roots):
    assert resolve_site("inventories/local/site.yaml").read_text() == "inventories"
    assert resolve_site("inventories/local").read_text() == "inventories"


def test_unknown_names_list_the_known_sites(roots):
    with pytest.raises(SiteNotFoundError, match="known sites: lab, local$"):
        resolve_site("nowhere")


def test_a_mistyped_name_gets_the_closest_site(roots):
    with pytest.raises(SiteNotFoundError, match=r"^no site 'locl': .* \(did you mean 'local'\?\)$"):
        resolve_site("locl")


def test_a_missing_file_and_a_directory_are_said_as_such(roots):
    with pytest.raises(SiteNotFoundError, match="^inventories/nope.yaml: no such file$"):
        resolve_site("inventories/nope.yaml")
    with pytest.raises(SiteNotFoundError, match="^inventories: is a directory with no site.yaml in it$"):
        resolve_site("inventories")
    with pytest.raises(SiteNotFoundError, match="^extra/: is a directory with no site.yaml in it$"):
        resolve_site("extra/")


def test_state_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOHASH_STATE_DIR", str(tmp_path))
    assert state_dir() == tmp_path

"""The import contracts (pyproject's [tool.importlinter]): the layers lib <- resources <- assets <- definitions,
and asset modules independent of each other.

A back-reference (lib importing a resource, a resource importing an asset module) fails here, and so does one
asset module using another as a library."""

import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0


@pytest.mark.parametrize("module, source", [
    # lib importing a resource: against the layers
    ("warmth_assets/lib/back_reference.py", "import resources.warehouse\n"),
    # one stage's module taking a helper from another's: against the independence of asset modules
    ("warmth_assets/assets/borrows.py", "from warmth_assets.assets.finetune import build_assets\n"),
])
def test_a_broken_contract_is_refused(tmp_path, monkeypatch, module, source):
    """The contracts can fail: a copy of the packages with one offending import is refused."""
    import shutil

    for package in ("warmth_assets", "resources"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / module).write_text(source)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.split(".")[0] in ("warmth_assets", "resources")]:
        monkeypatch.delitem(sys.modules, name)
    assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True) == 1


def test_the_top_level_name_resources_is_ours_alone():
    """`resources` is a bare top-level name (the design card's layout): no other installed distribution may ship a
    package of that name, and the one imported is this repository's (docs/design.md §7)."""
    from importlib.metadata import packages_distributions

    import resources

    assert set(packages_distributions().get("resources", [])) == {"warmth"}
    assert Path(resources.__file__).resolve().parent == REPO / "resources"

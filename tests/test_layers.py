"""The package layers (pyproject's [tool.importlinter]): lib <- resources <- assets <- definitions.

A back-reference (lib importing a resource, a resource importing an asset module) fails here."""

from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0


def test_a_back_reference_breaks_the_contract(tmp_path, monkeypatch):
    """The contract can fail: a copy of the packages where lib imports a resource is refused."""
    import shutil

    for package in ("warmth_assets", "resources"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "warmth_assets" / "lib" / "back_reference.py").write_text("import resources.warehouse\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in __import__("sys").modules if m.split(".")[0] in ("warmth_assets", "resources")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True) == 1

"""References point into the repository: every `docs/<file>.md §N` cited resolves to a heading of that file, and
nothing cites notes that are not in the repository (the shared STUDY/DESIGN/PITFALLS notes) or an issue number."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for pattern in ("*.py", "*.md", "*.toml", "*.sql", "Makefile")
           for p in REPO.rglob(pattern) if not {".venv", ".venv-serving", ".warmth", ".git"} & set(p.parts)]
CITATION = re.compile(r"docs/(\w+)\.md §\s?(\d+(?:\.\d+)?)(?:\s?[-–]\s?§?(\d+(?:\.\d+)?))?")
OUTSIDE = re.compile(r"\b(?:STUDY|DESIGN|PITFALLS)\.md\b|\bsee issues? \d+|\(issues? \d+(?: and \d+)?\)")


def headings(doc: str) -> set[str]:
    text = (REPO / "docs" / f"{doc}.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE))


def citations():
    for path in SOURCES:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in CITATION.finditer(line):
                yield path.relative_to(REPO), number, match


def test_every_docs_citation_resolves_to_a_section():
    found = list(citations())
    assert len(found) >= 30  # the code cites the study notes throughout; a scan that finds none is broken
    broken = [f"{path}:{line}: {m.group(0)}" for path, line, m in found
              for section in filter(None, (m.group(2), m.group(3))) if section not in headings(m.group(1))]
    assert not broken, f"citations of sections that docs/ does not have: {broken}"


def test_nothing_cites_notes_outside_the_repository_or_an_issue_number():
    stale = [f"{p.relative_to(REPO)}:{n}: {line.strip()[:100]}" for p in SOURCES if p.parts[-2:-1] != ("docs",)
             and p != Path(__file__)
             for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not stale, f"point these at docs/ instead: {stale}"


def test_the_scans_can_fail():
    assert CITATION.search("see docs/study.md §7-8").groups() == ("study", "7", "8")
    assert "99" not in headings("study") and "8.5" in headings("study")
    assert OUTSIDE.search("values from ../shared/STUDY.md") and OUTSIDE.search("(issues 8 and 14)")


def test_the_lib_map_names_every_module_and_no_other():
    """warmth_assets/lib/README.md is the map of lib/ that ARCHITECTURE.md points to: one line per module."""
    lib = REPO / "warmth_assets" / "lib"
    text = (lib / "README.md").read_text(encoding="utf-8")
    modules = {p.name for p in lib.glob("*.py") if p.name != "__init__.py"} | {"config/"}
    listed = set(re.findall(r"^- `([\w/]+(?:\.py)?)`", text, flags=re.MULTILINE))
    assert listed == modules, f"missing from the map: {modules - listed}; not in lib/: {listed - modules}"
    configs = {p.stem for p in (lib / "config").glob("*.py") if p.name != "__init__.py"}
    config_line = next(line for line in text.splitlines() if line.startswith("- `config/`"))
    assert all(f"`{name}`" in config_line for name in configs), f"config modules not named: {configs}"


@pytest.mark.parametrize("package, exempt", [("warmth_assets", {"lib"}), ("resources", set())])
def test_the_package_maps_name_every_module(package, exempt):
    """ARCHITECTURE.md stays one screen by pointing to a map per package; each map names every module."""
    root = REPO / package
    text = (root / "README.md").read_text(encoding="utf-8")
    modules = {p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.name != "__init__.py"
               and p.parent.name not in exempt | {"backends"} and "lib" not in p.relative_to(root).parts}
    modules |= {f"{d.name}/" for d in root.iterdir() if d.is_dir() and (d / "__init__.py").exists()
                and d.name not in exempt | {"assets"}}
    listed = set(re.findall(r"^- `([\w/.]+)`", text, flags=re.MULTILINE))
    assert listed == modules, f"missing from {package}/README.md: {modules - listed}; not there: {listed - modules}"
    assert len((REPO / "ARCHITECTURE.md").read_text().splitlines()) <= 70  # one screen

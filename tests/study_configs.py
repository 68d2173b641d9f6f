"""Study configurations for tests, built from validated settings instead of edited TOML text.

A `str.replace` on TOML text that matches nothing changes nothing, silently. Here a test names the
keys it changes as a nested dict; `deep_merge` refuses a key the base file does not have (unless the
test says it is new), `StudySettings.model_validate` refuses a key or value the schema does not
accept, and `write_study_config` writes the result as TOML for resources that still take a path and
loads it back through `load_settings`, the loader the pipeline uses.

    settings = study_settings({"judge": {"validation_sample": 12}})
    path = write_study_config(tmp_path, {"llm": {"base_url": url}}, new={"llm.base_url"})

Lists (`models`, `operations.watch`, `checkpoint_epochs`, ...) are replaced whole; to change one
element, build the new list from `load_toml(base)[...]`.

The definitions themselves come from the same settings: `study_defs(overrides)` is `build_defs` over
them, and `demo_asset(name)` one asset of demo.toml's definitions (its partitions, tags, code version).

tests/lib/test_config.py keeps raw TOML on purpose: it tests the loader's own errors.
"""

from __future__ import annotations

import copy
import functools
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import tomlkit

from warmth_assets.lib.config import StudySettings, load_settings
from warmth_assets.lib.model_sources import PACKAGE_PREFIX, resolve_model_file

REPO = Path(__file__).resolve().parents[1]


def _base_path(base: str | Path) -> Path:
    path = Path(base)
    return path if path.is_absolute() else REPO / path


def load_toml(path: str | Path) -> dict:
    """A TOML file as a dict; a relative path is taken from the repository root (demo.toml, dagster_project.toml)."""
    return tomllib.loads(_base_path(path).read_text(encoding="utf-8"))


def deep_merge(base: Mapping, overrides: Mapping, *, new: Iterable[str] = ()) -> dict:
    """`base` with `overrides` merged in, recursively through tables; neither argument is modified.

    A key of `overrides` that `base` lacks raises KeyError naming its dotted path, so an override aimed
    at a misspelt or misplaced key fails instead of silently changing nothing. `new` lists the dotted
    paths a test means to add ("llm.base_url", or a whole table: "finetune.openai"); each must occur in
    `overrides`. A table (dict) is merged key by key, anything else, lists included, replaced whole; a
    table may not be replaced by a non-table or the reverse (TypeError).
    """
    allowed = set(new)
    used: set[str] = set()

    def merge(into: dict, changes: Mapping, prefix: str) -> None:
        for key, value in changes.items():
            dotted = f"{prefix}{key}"
            if dotted in allowed:
                used.add(dotted)
            if key not in into:
                if dotted not in allowed:
                    raise KeyError(f"override {dotted!r} is not in the base configuration (a typo, the wrong "
                                   f"section, or a new key: pass new={{{dotted!r}}})")
                into[key] = copy.deepcopy(value)
            elif isinstance(into[key], dict) and isinstance(value, Mapping):
                merge(into[key], value, f"{dotted}.")
            elif isinstance(into[key], dict) or isinstance(value, Mapping):
                raise TypeError(f"override {dotted!r}: cannot replace a {type(into[key]).__name__} "
                                f"with a {type(value).__name__}")
            else:
                into[key] = copy.deepcopy(value)

    merged = copy.deepcopy(dict(base))
    merge(merged, overrides, "")
    unused = allowed - used
    if unused:
        raise KeyError(f"new={sorted(unused)} names keys that are not in the overrides")
    return merged


def study_data(overrides: Mapping | None = None, base: str | Path = "demo.toml", *, new: Iterable[str] = ()) -> dict:
    """The merged configuration as a plain dict (what a TOML file of it would hold)."""
    return deep_merge(load_toml(base), overrides or {}, new=new)


def _check_model_files(settings: StudySettings, folder: Path) -> None:
    """As load_settings: `gguf`/`local` model sources exist, relative ones taken from the config's folder."""
    for i, model in enumerate(settings.models):
        if model.source_kind in ("gguf", "local"):
            try:
                resolve_model_file(model.source, folder)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"models[{i}].source: {exc}") from None


def study_settings(overrides: Mapping | None = None, base: str | Path = "demo.toml", *,
                   new: Iterable[str] = ()) -> StudySettings:
    """`base` with `overrides`, validated by `StudySettings.model_validate` (pydantic's ValidationError on a
    bad key or value) and its model files checked, relative ones from the base file's folder."""
    settings = StudySettings.model_validate(study_data(overrides, base, new=new))
    _check_model_files(settings, _base_path(base).parent)
    return settings


def write_study_config(folder: Path, overrides: Mapping | None = None, base: str | Path = "demo.toml", *,
                       new: Iterable[str] = (), name: str = "study.toml") -> Path:
    """`base` with `overrides`, validated, written to `folder/name` as TOML and loaded back through
    `load_settings`; the path, for resources that take one (StudyConfigResource, WARMTH_CONFIG)."""
    data = study_data(overrides, base, new=new)
    settings = StudySettings.model_validate(data)
    base_folder = _base_path(base).parent
    _check_model_files(settings, base_folder)
    for model in data.get("models", []):
        # load_settings resolves a relative model file from the config's folder: keep pointing at the same file
        source = model.get("source", "")
        if (model.get("source_kind") in ("gguf", "local") and not source.startswith(PACKAGE_PREFIX)
                and not Path(source).expanduser().is_absolute()):
            model["source"] = str(resolve_model_file(source, base_folder))
    text = to_toml(data)
    assert tomllib.loads(text) == data, "the TOML writer lost or changed a value"
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    loaded = load_settings(path)
    assert loaded == StudySettings.model_validate(data), f"{path} does not load back as the settings written"
    return path


def study_defs(overrides: Mapping | None = None, base: str | Path = "demo.toml", *, new: Iterable[str] = (),
               resources: dict | None = None):
    """The code location's definitions (`build_defs`) for `base` with `overrides`."""
    from warmth_assets.build import build_defs

    return build_defs(study_settings(overrides, base, new=new), resources=resources)


@functools.cache
def _demo_defs():
    return study_defs()


def demo_asset(name: str):
    """One asset of demo.toml's definitions, as definitions.py builds it (partitions, GPU tags, code version)."""
    # Looked up in the list, not resolved: resolving checks resources, which a test passes at materialise time.
    [found] = [a for a in _demo_defs().assets if dg.AssetKey(name) in a.keys]
    return found


def to_toml(data: Mapping) -> str:
    """`data` as TOML text (tomlkit): nested dicts as [tables], lists of dicts as [[arrays of tables]]."""
    return tomlkit.dumps(data)

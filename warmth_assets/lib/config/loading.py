"""Reading a file into StudySettings, or a ConfigError naming the file, the key and the reason; the active
file (WARMTH_CONFIG, else dagster_project.toml), cached per version."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from warmth_assets.lib import paths
from warmth_assets.lib.config.base import ConfigError
from warmth_assets.lib.config.study import StudySettings
from warmth_assets.lib.model_sources import resolve_model_file


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling and section)"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"]


def _check_files(settings: StudySettings, base: Path) -> list[str]:
    problems = []
    for i, model in enumerate(settings.models):
        if model.source_kind in ("gguf", "local"):
            try:
                resolve_model_file(model.source, base)
            except FileNotFoundError as exc:
                problems.append(f"models[{i}].source: {exc}")
    return problems


def load_settings(path: str | os.PathLike) -> StudySettings:
    """Read and validate one configuration file, or raise ConfigError naming file, key and reason."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found (set WARMTH_CONFIG to an existing TOML file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = StudySettings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines)) from None
    problems = _check_files(settings, path.parent)
    if problems:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(f"{path}: {p}" for p in problems))
    return settings


def config_path() -> Path:
    return Path(os.environ.get("WARMTH_CONFIG") or paths.repo_root() / "dagster_project.toml").resolve()


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> StudySettings:
    return load_settings(path)


def load_config(path: str | os.PathLike | None = None) -> StudySettings:
    """The active configuration (WARMTH_CONFIG, else dagster_project.toml), cached per file version."""
    resolved = Path(path).resolve() if path else config_path()
    mtime = resolved.stat().st_mtime if resolved.exists() else 0.0
    return _cached(str(resolved), mtime)

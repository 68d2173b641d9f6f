"""One settings snapshot per code location: the configuration file read and validated once, when the code location
loads, and every run of that code location reading the same snapshot, whatever happens to the file meanwhile.

Dagster runs and steps are child processes of the process that loaded the code location (the code server of
`dagster dev`, the `dagster asset materialize` command) and load the definitions again. The first load therefore
writes the validated settings to `WARMTH_HOME/settings/<sha256>.json` and names that file in
`WARMTH_SETTINGS_SNAPSHOT`, which its children inherit: they read the snapshot, not the file. Reloading the code
location starts a new process without that variable, which reads the file anew (the one way to pick up an edit).
A Ray step gets the variable through the executor's environment (build.RAY_STEP_ENV).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from warmth_assets.lib import paths
from warmth_assets.lib.config.loading import ConfigError, config_path, load_settings
from warmth_assets.lib.config.study import StudySettings

SNAPSHOT_ENV = "WARMTH_SETTINGS_SNAPSHOT"


@dataclass(frozen=True)
class SettingsSnapshot:
    settings: StudySettings
    path: str  # the file it was read from
    sha256: str  # of that file's bytes as read

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "sha256": self.sha256, "settings": self.settings.model_dump(mode="json")},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SettingsSnapshot":
        data = json.loads(text)
        return cls(StudySettings.model_validate(data["settings"]), data["path"], data["sha256"])


def read_file(path: str | os.PathLike | None = None) -> SettingsSnapshot:
    """The configuration file (WARMTH_CONFIG, else dagster_project.toml) read and validated now."""
    resolved = Path(path).resolve() if path else config_path()
    try:
        data = resolved.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{resolved}: no such configuration file (WARMTH_CONFIG names the study's TOML)") from None
    return SettingsSnapshot(load_settings(resolved), str(resolved), hashlib.sha256(data).hexdigest())


def code_location_snapshot() -> SettingsSnapshot:
    """The snapshot of this code location: inherited from the process that loaded it, else read from the file,
    stored and named for the processes this one starts."""
    pinned = os.environ.get(SNAPSHOT_ENV)
    if pinned:
        try:
            return SettingsSnapshot.from_json(Path(pinned).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{SNAPSHOT_ENV}={pinned}: the code location's settings snapshot is gone; "
                              "reload the code location") from None
    snapshot = read_file()
    folder = paths.warmth_home() / "settings"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{snapshot.sha256}.json"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(snapshot.to_json())
        os.replace(partial, target)
    os.environ[SNAPSHOT_ENV] = str(target)
    return snapshot

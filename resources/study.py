"""The study's configuration as a Dagster resource: the code location's settings snapshot, handed over whole.

Built from `lib/config/snapshot` when the code location loads (`StudyConfigResource.from_snapshot`): the validated
settings travel inside the resource, with the file they came from and its sha256 for provenance, so an edit of the
file reaches no run until the code location is reloaded. Built from a path alone (tests, tools), the file is read
once, at the first access.
"""

import dagster as dg
from pydantic import Field, PrivateAttr

from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.config.snapshot import SettingsSnapshot, read_file


class StudyConfigResource(dg.ConfigurableResource):
    """The validated `dagster_project.toml` (or WARMTH_CONFIG) as loaded with the code location."""

    config_path: str = Field(description="TOML file of the study (dagster_project.toml, demo.toml, ...)")
    config_sha256: str = Field("", description="sha256 of the file as loaded; empty: read at the first access")
    settings_json: str = Field("", description="The validated settings as loaded (the snapshot itself)")

    _snapshot: SettingsSnapshot | None = PrivateAttr(default=None)

    @classmethod
    def from_snapshot(cls, snapshot: SettingsSnapshot) -> "StudyConfigResource":
        return cls(config_path=snapshot.path, config_sha256=snapshot.sha256,
                   settings_json=snapshot.settings.model_dump_json())

    @property
    def snapshot(self) -> SettingsSnapshot:
        if self._snapshot is None:
            self._snapshot = (SettingsSnapshot(StudySettings.model_validate_json(self.settings_json),
                                               self.config_path, self.config_sha256)
                              if self.settings_json else read_file(self.config_path))
        return self._snapshot

    @property
    def settings(self) -> StudySettings:
        return self.snapshot.settings

    @property
    def sha256(self) -> str:
        """Of the configuration file as these settings were read from it."""
        return self.snapshot.sha256

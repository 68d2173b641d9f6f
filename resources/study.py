"""The study's configuration as a Dagster resource, so every asset reads the same typed settings."""

import dagster as dg
from pydantic import Field

from warmth_assets.lib.config import StudySettings, load_config


class StudyConfigResource(dg.ConfigurableResource):
    """The validated `dagster_project.toml` (or WARMTH_CONFIG). Shown in the UI's resource tab."""

    config_path: str = Field(description="TOML file of the study (dagster_project.toml, demo.toml, ...)")

    @property
    def settings(self) -> StudySettings:
        return load_config(self.config_path)

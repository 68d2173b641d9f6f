"""The code location `defs` (workspace.yaml points here): build_defs over the configured study file
(WARMTH_CONFIG, else dagster_project.toml). The only module that reads the configuration at import."""

from warmth_assets.build import build_defs, build_executor, build_resources
from warmth_assets.lib.config import config_path, load_config

settings = load_config()
defs = build_defs(settings, resources=build_resources(settings, config_path()), executor=build_executor())

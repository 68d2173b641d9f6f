"""The code location `defs` (workspace.yaml points here): build_defs over the study's settings snapshot
(WARMTH_CONFIG, else dagster_project.toml), taken when Dagster loads the code location, not at import: a reload
of the code location is the one way an edit of the file reaches a run (lib/config/snapshot)."""

import dagster as dg

from warmth_assets.build import build_defs, build_executor, build_resources
from warmth_assets.lib.config.snapshot import code_location_snapshot


@dg.definitions
def defs() -> dg.Definitions:
    snapshot = code_location_snapshot()
    return build_defs(snapshot.settings, resources=build_resources(snapshot), executor=build_executor())

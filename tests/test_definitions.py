"""The code location loads, validates, and every asset is described for the UI."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_definitions_validate_from_the_workspace(warmth_home):
    proc = subprocess.run(
        [str(Path(os.sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Validation successful" in proc.stdout + proc.stderr


def test_every_asset_has_group_kinds_and_description():
    from warmth_assets.definitions import defs as load_defs

    defs = load_defs()

    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert keys, "no assets"
    for key in keys:
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.description, key
        assert node.kinds, key

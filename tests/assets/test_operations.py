"""cost_estimate and `warmth estimate`: the dry run of the configured study."""

import dagster as dg

from warmth_assets.assets import operations
from tests.study_configs import write_study_config
from warmth_assets.cli import main


def test_cost_estimate_asset_and_cli_agree(warmth_home, instance, capsys, monkeypatch, tmp_path):
    config = write_study_config(tmp_path, {"operations": {"budget_usd": 100}}, base="dagster_project.toml")
    monkeypatch.setenv("WARMTH_CONFIG", str(config))
    from warmth_assets.build import build_resources
    from warmth_assets.lib.config.snapshot import read_file

    resources = build_resources(read_file(config))
    result = dg.materialize([operations.cost_estimate], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("cost_estimate")[0].metadata
    table = resources["warehouse"].query_df("SELECT * FROM cost_estimate")
    assert set(table["stage"]) == {"rewrites", "judging", "generations (gpt-4o-2024-08-06)",
                                   "fine-tuning (gpt-4o-2024-08-06)"}
    assert meta["estimated_usd"].value == round(table["usd"].sum(), 2) > 100
    assert meta["within_budget"].value is False and meta["budget_usd"].value == 100.0

    assert main(["estimate"]) == 0
    out = capsys.readouterr().out
    assert "judging" in out and "(OVER)" in out and f"${table['usd'].sum():,.2f}" in out

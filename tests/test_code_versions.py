"""Code versions: a changed prompt version marks exactly the assets it feeds stale, then their children.

The staleness is Dagster's own (the stale-status resolver the UI uses), read from materialisations
recorded in a real instance. The assets materialised are stand-ins with the real definitions' keys,
lineage and code versions (unpartitioned: staleness per partition follows the same rule), so the check
costs one in-process run instead of the pipeline.
"""

import dagster as dg
import pytest
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import StaleCauseCategory, StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from tests.study_configs import study_defs, study_settings
from warmth_assets.code_versions import READS, code_version
from warmth_assets.lib import judging, rewrite_prompts


def graph_of(defs: dg.Definitions) -> AssetGraph:
    # Not defs.resolve_asset_graph(): that wants the resources, which these definitions are built without.
    return AssetGraph.from_assets(list(defs.assets))


def stand_ins(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """One no-op asset per real one: same key, parents and code version, unpartitioned."""
    graph = graph_of(defs)
    out = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)

        @dg.asset(key=key, deps=sorted(node.parent_keys), code_version=node.code_version)
        def _stand_in() -> None:
            return None

        out.append(_stand_in)
    return out


def stale(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, set]:
    """{asset: its stale cause categories} for every asset Dagster marks stale under `defs`."""
    resolver = get_stale_status_resolver(instance, stand_ins(defs))
    return {
        key.to_user_string(): {cause.category for cause in resolver.get_stale_causes(key)}
        for key in graph_of(defs).get_all_asset_keys() if resolver.get_status(key) == StaleStatus.STALE
    }


def test_nothing_is_stale_when_nothing_changed(instance):
    assert dg.materialize(stand_ins(study_defs()), instance=instance).success
    assert stale(instance, study_defs()) == {}


@pytest.mark.parametrize("change, reading", [
    ("judge", {"judgments", "capability_scores", "study_report"}),
    # inspect_logs rebuilds the messages of answers recorded without their call's key from the prompt version
    ("rewrite", {"style_rewrites", "validation_generations", "generations", "inspect_logs", "study_report"}),
])
def test_a_new_prompt_version_marks_what_it_feeds_then_their_children(instance, monkeypatch, change, reading):
    if change == "judge":
        # A second judge prompt, as a new version would add it: the settings refuse unknown versions.
        monkeypatch.setitem(judging.JUDGE_PROMPTS, "judge-v2", judging.JUDGE_PROMPTS["judge-v1"])
        overrides, new = {"judge": {"prompt_version": "judge-v2"}}, set()
    else:
        monkeypatch.setitem(rewrite_prompts.PROMPTS, "study-v2", rewrite_prompts.PROMPTS["study-v1"])
        overrides, new = {"rewrite": {"prompt_version": "study-v2"}}, {"rewrite.prompt_version"}
    before, after = study_defs(), study_defs(overrides, new=new)
    assert dg.materialize(stand_ins(before), instance=instance).success

    # Dagster marks the assets whose code version moved (the UI's "code version changed")...
    assert stale(instance, after) == {name: {StaleCauseCategory.CODE} for name in reading}

    # ...and, once they are materialised again, their children, by new data (one step at a time: Dagster 1.13
    # does not mark a grandchild until the child is materialised; eager automation walks the chain).
    assert dg.materialize(stand_ins(after), instance=instance, selection=sorted(reading)).success
    graph = graph_of(after)
    children = {c.to_user_string() for n in reading for c in graph.get(dg.AssetKey(n)).child_keys} - reading
    assert children, "a prompt version with nothing downstream proves nothing here"
    assert stale(instance, after) == {name: {StaleCauseCategory.DATA} for name in children}


def test_code_versions_are_deterministic_and_follow_only_what_an_asset_reads():
    def code_versions(graph: AssetGraph) -> dict[str, str]:
        # external assets (imported_outputs: `warmth import-outputs` reports it) run no code here and have none
        assert {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_executable} == {
            "imported_outputs"} and graph.get(dg.AssetKey("imported_outputs")).code_version is None
        return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()
                if graph.get(k).is_executable}

    versions = code_versions(graph_of(study_defs()))
    assert versions == code_versions(graph_of(study_defs()))
    assert set(versions) == set(READS) and all(len(v) == 12 for v in versions.values())

    changed = code_versions(graph_of(study_defs({"analysis": {"alpha": 0.01}})))
    moved = {name for name, version in changed.items() if version != versions[name]}
    assert moved == {"paired_tests", "regression_tables", "marginal_effects", "study_report"}


def test_an_asset_without_an_entry_is_refused():
    """A new asset must say what changes its output, or the definitions do not build."""
    with pytest.raises(KeyError, match="no entry in code_versions.READS"):
        code_version("new_asset", study_settings())

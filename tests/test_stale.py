"""Stale partitions in sight (docs/pitfalls.md §2.7): after a settings change, `warmth stale`, the partitions_current
checks and (opt-in) automation see exactly the partitions Dagster's resolver marks stale, with the reason.

A real instance in a temporary DAGSTER_HOME. The assets materialised are stand-ins: each real asset's spec whole
(key, partitions, lineage with its partition mappings, code version, automation condition) over a no-op body, so
Dagster records what the real runs record (code version, data version, input provenance) for seconds of work.
The code versions come from the real definitions of demo.toml with one setting changed.
"""

import dagster as dg
import pytest

from resources.model_registry import upsert
from resources.warehouse import WarehouseResource
from tests.study_configs import study_defs, write_study_config
from warmth_assets import cli
from warmth_assets.checks import STALE_CHECK
from warmth_assets.lib.registry import ModelRow

CHANGED = {"sociot": {"samples": 3}}  # demo.toml: 5; warmth_scores reads it, nothing else does
CHAIN = ["adapters", "validation_generations", "warmth_scores"]


def key(model: str, checkpoint: str) -> str:
    return str(dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint}))


def stand_ins(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    out = []
    for spec in (s for a in defs.assets for s in a.specs):

        @dg.multi_asset(specs=[spec], name=spec.key.to_python_identifier())
        def _no_op() -> dg.MaterializeResult:
            return dg.MaterializeResult()

        out.append(_no_op)
    return out


def materialise(instance, defs, assets: list[str], partitions: list[str]) -> None:
    for partition in partitions:
        assert dg.materialize(stand_ins(defs), instance=instance, selection=assets, partition_key=partition,
                              tags={"test": "stale"}).success


def materialisations(instance, asset: str) -> dict:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    return {p: sum(r.partition_key == p for r in records) for p in {r.partition_key for r in records}}


def stale_cli(capsys, *args) -> tuple[int, list[str]]:
    code = cli.main(["stale", *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out.splitlines()


def listed(lines: list[str]) -> dict[str, set[str]]:
    """{asset: the partitions listed under it} from `warmth stale`'s output."""
    found: dict[str, set[str]] = {}
    asset = None
    for line in lines[:-1]:
        if not line.startswith(" "):
            asset = line.split(" ")[0]
            found[asset] = set()
        else:
            found[asset].add(line.split()[0])
    return found


def checked(defs: dg.Definitions) -> dg.Definitions:
    """The stand-ins of `defs` with its partitions_current checks (and no resources to resolve)."""
    checks = [c for c in defs.asset_checks if any(k.name == STALE_CHECK for k in c.check_keys)]
    job = dg.define_asset_job("stale_checks", selection=dg.AssetSelection.checks(*checks))
    return dg.Definitions(assets=stand_ins(defs), asset_checks=checks, jobs=[job])


def stale_checks(instance, defs: dg.Definitions) -> dict[str, dg.AssetCheckEvaluation]:
    """Run every partitions_current check of `defs` over the stand-ins; {asset: its evaluation}."""
    run = checked(defs).resolve_job_def("stale_checks").execute_in_process(instance=instance)
    assert run.success
    return {e.asset_key.to_user_string(): e for e in run.get_asset_check_evaluations()}


@pytest.fixture
def models(instance):
    instance.add_dynamic_partitions("models", ["m1", "m2", "imported"])
    return instance


def test_a_changed_setting_lists_exactly_its_partitions_with_the_reason(tmp_path, monkeypatch, capsys, models):
    instance = models
    before = study_defs()
    done = [key("m1", "original"), key("m1", "warm-e1"), key("m2", "original")]
    materialise(instance, before, CHAIN, done)
    # Released results recorded without a run: stale to Dagster (no inputs), not ours to re-run.
    instance.report_runless_asset_event(dg.AssetMaterialization("warmth_scores", partition=key("imported", "original")))

    code, lines = stale_cli(capsys)
    assert code == 0 and len(lines) == 1, lines
    assert lines[0].startswith("nothing stale (9 materialised partitions checked in ")
    assert lines[0].endswith(" assets; 1 imported partition not checked)")

    monkeypatch.setenv("WARMTH_CONFIG", str(write_study_config(tmp_path, CHANGED)))
    code, lines = stale_cli(capsys)
    assert code == 1
    assert listed(lines) == {"warmth_scores": set(done)}, lines
    assert lines[0].startswith("warmth_scores (code version ") and lines[0].endswith("3 of 3 materialised partitions stale")
    reason = "code version changed: a setting, prompt or rule it reads changed (it reads sociot.lm, sociot.samples"
    assert all(reason in line for line in lines[1:4]), lines
    assert lines[-1].startswith("3 stale partitions in 1 asset (9 checked in ") and "1 imported partition" in lines[-1]

    code, lines = stale_cli(capsys, "--select", "validation_generations")
    assert code == 0 and lines[-1].startswith("nothing stale (3 materialised partitions checked in 1 assets"), lines

    # The check says the same where the UI shows it: a warning on warmth_scores, passed elsewhere.
    after = study_defs(CHANGED)
    evaluations = stale_checks(instance, after)
    scores = evaluations.pop("warmth_scores")
    assert not scores.passed and scores.severity == dg.AssetCheckSeverity.WARN
    assert scores.metadata["stale_keys"].value == sorted(done)
    assert scores.metadata["by_reason"].value == {"code version changed": 3}
    assert scores.metadata["imported_not_checked"].value == 1
    table = scores.metadata["stale"].value
    assert all(p.replace("|", "\\|") in table for p in done) and "sociot.samples" in table
    assert evaluations and all(e.passed for e in evaluations.values()), {
        k: e.metadata["stale_keys"].value for k, e in evaluations.items() if not e.passed}

    # One partition re-materialised under the new settings leaves the other two.
    materialise(instance, after, ["warmth_scores"], [done[0]])
    code, lines = stale_cli(capsys, "--select", "warmth_scores")
    assert code == 1 and listed(lines) == {"warmth_scores": set(done[1:])}


def test_an_updated_input_is_named(tmp_path, monkeypatch, capsys, models):
    """validation_generations re-run under a new validation temperature: its child's partition is stale through it."""
    instance = models
    changed = {"generation": {"validation": {"temperature": 0.5}}}
    materialise(instance, study_defs(), CHAIN, [key("m1", "original"), key("m2", "original")])
    materialise(instance, study_defs(changed), ["validation_generations"], [key("m1", "original")])

    monkeypatch.setenv("WARMTH_CONFIG", str(write_study_config(tmp_path, changed)))
    code, lines = stale_cli(capsys)
    assert code == 1 and listed(lines) == {"validation_generations": {key("m2", "original")},
                                           "warmth_scores": {key("m1", "original")}}, lines
    [scores] = [line for line in lines if line.startswith("  " + key("m1", "original")) and "input" in line]
    assert scores.split(None, 1)[1] == (
        f"input updated: validation_generations [{key('m1', 'original')}] has a new data version"), scores


def test_the_check_runs_when_its_assets_code_version_changes(models):
    """Automation requests the partitions_current check of the asset whose code version moved, and no other."""
    instance = models
    before, after = checked(study_defs()), checked(study_defs(CHANGED))
    materialise(instance, before, CHAIN, [key("m1", "original")])

    first = dg.evaluate_automation_conditions(defs=before, instance=instance)
    assert not _requested_checks(first)  # the first evaluation takes stock
    settled = dg.evaluate_automation_conditions(defs=before, instance=instance, cursor=first.cursor)
    assert not _requested_checks(settled)
    changed = dg.evaluate_automation_conditions(defs=after, instance=instance, cursor=settled.cursor)
    assert _requested_checks(changed) == {"warmth_scores"}


def _requested_checks(evaluation) -> set[str]:
    return {r.key.asset_key.to_user_string() for r in evaluation.results
            if isinstance(r.key, dg.AssetCheckKey) and r.key.name == STALE_CHECK and not r.true_subset.is_empty}


@pytest.mark.parametrize("opt_in", [True, False], ids=["rematerialize_stale", "default"])
def test_automation_rematerialises_stale_partitions_only_when_asked(warmth_home, models, opt_in):
    instance = models
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    checkpoints = ["original", "warm-e1", "warm-e2", "cold-e1", "cold-e2", "warm-prompt"]
    upsert(warehouse, [ModelRow(slug=m, source_kind="hf", source=f"org/{m}", family="x", chat_template="model",
                                access="open_weight", styles=["warm", "cold"], checkpoints=checkpoints)
                       for m in ("m1", "m2")])
    flag = {"operations": {"rematerialize_stale": opt_in}}
    before = checked(study_defs(flag, new={"operations"}))
    after = checked(study_defs({**flag, **CHANGED}, new={"operations"}))
    old, new = [key("m1", "original"), key("m1", "warm-e1")], [key("m2", "original")]

    cursor = dg.evaluate_automation_conditions(defs=before, instance=instance).cursor  # takes stock
    materialise(instance, before, CHAIN, old)
    materialise(instance, after, CHAIN, new)  # m2 arrives after the change: nothing of it is stale
    counts = {asset: materialisations(instance, asset) for asset in CHAIN}

    ran = []
    for _ in range(4):
        evaluation = dg.evaluate_automation_conditions(defs=after, instance=instance, cursor=cursor)
        cursor = evaluation.cursor
        requested = [(asset, p) for asset in CHAIN
                     for p in evaluation.get_requested_partitions(dg.AssetKey(asset))]
        if not requested:
            break
        ran += requested
        for asset, partition in requested:
            materialise(instance, after, [asset], [partition])
    if opt_in:
        assert sorted(ran) == [("warmth_scores", p) for p in old]
        counts["warmth_scores"].update({p: 2 for p in old})
    else:
        assert ran == []
    assert {asset: materialisations(instance, asset) for asset in CHAIN} == counts

"""Declarative automation: a new training run or a new model partition completes the pipeline by itself.

Per model x checkpoint asset: `eager()` (a partition newly added, or an upstream partition updated,
once every upstream is present and none in progress), limited to the partitions the model actually
has (GPT-4o has no warm-e0.5; imported models are results, never run), gated on the blocking checks
of its inputs, and deaf to `model_registry` (the sensor registering a new model must not re-run
everyone else's partitions). The summaries (trajectory, analysis, report) follow any new partition
and do not wait for checkpoints a model will never have.

`finetune_runs` has no condition: training is requested by `new_model_sensor` or by hand.

Opt-in, [operations] rematerialize_stale (build_defs applies `or_stale`): each condition also takes the
materialised partitions Dagster's own resolver marks stale (staleness.py), e.g. every warmth_scores partition
once `[sociot] samples` changed, within the same gates; a partition whose last run failed waits for a person.
"""

import warnings
from typing import Callable, Mapping

import dagster as dg

from warmth_assets import staleness

REGISTRY = dg.AssetSelection.assets("model_registry")


# Run only for the evaluated checkpoints ([evaluation] checkpoints); the warmth stage runs for all.
EVALUATION_ASSETS = {"generations", "judgments", "capability_scores", "inspect_logs"}


def runnable_partitions(keys_by_model: dict[str, list[Mapping]], evaluated: set[str] | None = None
                        ) -> Callable[[dict[str, str], str], bool]:
    """The rule: is a (model, checkpoint | style) partition of `asset` one this model is run for?"""

    def runnable(dims: dict[str, str], asset: str = "") -> bool:
        rows = keys_by_model.get(dims["model"])
        if not rows or rows[0]["origin"] == "import":
            return False
        if "style" in dims:
            return dims["style"] in rows[0]["styles"]
        if asset in EVALUATION_ASSETS and evaluated is not None and dims["checkpoint"] not in evaluated:
            return False
        return dims.get("checkpoint") in rows[0]["checkpoints"]

    return runnable


def registry_lookup(evaluated: set[str] | None) -> Callable[[dict[str, str], str], bool]:
    """`runnable_partitions` over the current `model_registry` table (one query)."""
    from resources.model_registry import read_rows
    from resources.warehouses import default_warehouse

    by_model: dict[str, list[Mapping]] = {}
    for row in read_rows(default_warehouse()):
        by_model.setdefault(row.slug, []).append(row)
    return runnable_partitions(by_model, evaluated)


class RegisteredPartition(dg.AutomationCondition):
    """Candidates limited to the partitions their model is registered with (see `runnable_partitions`).

    `evaluated`: [evaluation] checkpoints of the settings the definitions were built from (None: all), held
    here so that an evaluation does not read the configuration file a second time.
    """

    def __init__(self, evaluated: frozenset[str] | None = None):
        self.evaluated = evaluated

    @property
    def name(self) -> str:
        return "registered_partition"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        subset = context.candidate_subset
        if subset.is_empty or not subset.is_partitioned:
            return dg.AutomationResult(context, true_subset=subset)
        runnable = registry_lookup(self.evaluated)
        partitions_def = subset.partitions_def
        keep = set()
        for key in subset.expensively_compute_partition_keys():
            multi = partitions_def.get_partition_key_from_str(key) if isinstance(
                partitions_def, dg.MultiPartitionsDefinition) else key
            if isinstance(multi, dg.MultiPartitionKey) and runnable(multi.keys_by_dimension,
                                                                    context.key.to_user_string()):
                keep.add(key)
        return dg.AutomationResult(context, true_subset=subset.compute_intersection_with_partition_keys(keep))


class StalePartition(dg.AutomationCondition):
    """Candidates Dagster's stale-status resolver marks STALE (a new code version, an updated input)."""

    @property
    def name(self) -> str:
        return "stale_partition"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        subset = context.candidate_subset
        if subset.is_empty:
            return dg.AutomationResult(context, true_subset=subset)
        view = context.asset_graph_view
        resolver = staleness.resolver(view.instance, view.asset_graph, view)
        if not subset.is_partitioned:
            stale = staleness.stale_among(resolver, context.key, [None])
            return dg.AutomationResult(context, true_subset=subset if stale else context.get_empty_subset())
        stale = staleness.stale_among(resolver, context.key, subset.expensively_compute_partition_keys())
        return dg.AutomationResult(
            context, true_subset=subset.compute_intersection_with_partition_keys({s.partition for s in stale}))


def or_stale(condition: dg.AutomationCondition, evaluated: frozenset[str] | None,
             partitioned: bool = True) -> dg.AutomationCondition:
    """`condition`, or ([operations] rematerialize_stale) a materialised partition the resolver marks stale: its
    model registered for it, not in progress, its last run not failed, its inputs checked and not in progress, and
    present (a partitioned asset; a summary runs with what exists, as under `summary()`)."""
    stale = (~dg.AutomationCondition.missing()
             & ~dg.AutomationCondition.in_progress()
             & ~dg.AutomationCondition.execution_failed()
             & ~dg.AutomationCondition.any_deps_in_progress()
             & RegisteredPartition(evaluated))
    if partitioned:
        stale = stale & ~dg.AutomationCondition.any_deps_missing()
    stale = (stale & dg.AutomationCondition.all_deps_blocking_checks_passed() & StalePartition()).ignore(REGISTRY)
    return (condition | stale.with_label("stale ([operations] rematerialize_stale)")).with_label(
        f"{condition.get_label() or condition.name}, or stale")


def per_partition(evaluated: frozenset[str] | None) -> dg.AutomationCondition:
    return (
        RegisteredPartition(evaluated)
        & dg.AutomationCondition.eager().ignore(REGISTRY)
        # The registry too is ignored here: rows the sensor writes never materialise `model_registry`.
        & dg.AutomationCondition.all_deps_blocking_checks_passed().ignore(REGISTRY)
    ).with_label("eager, registered partitions, checks passed")


def summary() -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).ignore(REGISTRY)
    ).with_label("eager, allowing partitions that will never exist")


# A user-code sensor: RegisteredPartition reads the registry, which a daemon-side evaluation cannot.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server: beta in our pinned Dagster
    automation_sensor = dg.AutomationConditionSensorDefinition(
        "pipeline_automation",
        target=dg.AssetSelection.all(),
        use_user_code_server=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Declarative automation of every asset with a condition: see warmth_assets/automation.py.",
    )

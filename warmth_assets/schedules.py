"""`reevaluation_schedule`: models marked as moving targets are re-evaluated on a cron (docs/design.md §6).

An API alias (say `gpt-4o`) can change its weights under the same name. On each tick, every moving
target's checkpoints listed in [operations] reevaluate_checkpoints get a run of `generations`,
`judgments` and `capability_scores`, tagged with the evaluation date. The date enters the cache key
of those calls only (generations asset), so they are really sent again, and each date's results are
kept under history/ (PartitionedParquetIOManager) for the report's drift table. The analysis
follows by declarative automation.
"""

import dagster as dg

from resources.model_registry import moving_targets
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.reevaluation import EVALUATION_DATE_TAG
from warmth_assets.partitions import StudyPartitions


def build_reevaluation(settings: StudySettings, parts: StudyPartitions):
    """`reevaluation_schedule` and its job (build_defs)."""
    reevaluation_job = dg.define_asset_job(
        "reevaluation",
        selection=dg.AssetSelection.assets("generations", "judgments", "capability_scores"),
        partitions_def=parts.model_evaluated,  # the evaluation stage's: only evaluated checkpoints
        description="Generations and judgments of one model checkpoint, again (moving targets).",
    )

    @dg.schedule(
        name="reevaluation_schedule",
        cron_schedule=settings.operations.reevaluation_cron,  # a definition-time value
        execution_timezone="UTC",
        job=reevaluation_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Re-runs generations and judgments of moving targets (registry moving_target), stamping the "
                    "evaluation date; the cache is bypassed for exactly those calls and earlier results are kept.",
    )
    def reevaluation_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource,
                              study: StudyConfigResource):
        date = context.scheduled_execution_time.date().isoformat()
        targets = moving_targets(warehouse, list(study.settings.operations.reevaluate_checkpoints))
        if not targets:
            return dg.SkipReason("no model in model_registry is marked moving_target")
        return [
            dg.RunRequest(run_key=f"{date}:{model}|{checkpoint}", partition_key=parts.model_evaluated_key(model, checkpoint),
                          tags={EVALUATION_DATE_TAG: date, "warmth/trigger": "reevaluation_schedule"})
            for model, checkpoint in targets
        ]

    return reevaluation_schedule, reevaluation_job

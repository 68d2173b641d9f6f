"""The warehouse_maintenance job: in the code location with its schedule (stopped), in the pool of size 1, and run
for real on the DuckDB file (the lake's compaction is tests/resources/test_lake.py::test_maintenance_compacts...)."""

import dagster as dg

from resources.warehouse import WarehouseResource


def test_the_maintenance_job_is_in_the_code_location_one_at_a_time_with_a_stopped_schedule(resources):
    from warmth_assets.build import build_defs
    from warmth_assets.lib.config.snapshot import read_file

    defs = build_defs(read_file().settings, resources=resources)
    job = defs.resolve_job_def("warehouse_maintenance")
    assert [node.definition.pool for node in job.graph.node_dict.values()] == ["warehouse_maintenance"]
    schedule = defs.resolve_schedule_def("warehouse_maintenance_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


class _Counting(WarehouseResource):
    def maintain(self) -> dict[str, int]:
        super().maintain()
        return {"live_files_before": 7, "live_files_after": 2}


def test_the_maintenance_job_compacts_through_the_warehouse_and_records_what_it_did(tmp_path, instance):
    import pandas as pd

    from warmth_assets.instance import MAINTENANCE_POOL
    from warmth_assets.maintenance import warehouse_maintenance

    assert instance.event_log_storage.get_concurrency_info(MAINTENANCE_POOL).slot_count == 1
    warehouse = _Counting(database=str(tmp_path / "w.duckdb"))
    warehouse.replace_rows("validation_prompts", pd.DataFrame({"conversation_id": ["c1"], "query_type": ["advice"],
                                                               "prompt": ["p"]}))
    result = warehouse_maintenance.execute_in_process(resources={"warehouse": warehouse}, instance=instance)
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    assert metadata == {"backend": "duckdb", "live_files_before": 7, "live_files_after": 2}
    assert warehouse.query_df("SELECT count(*) AS n FROM validation_prompts")["n"][0] == 1  # CHECKPOINT kept it

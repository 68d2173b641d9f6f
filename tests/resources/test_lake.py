"""The lake backend against a real Postgres catalog, beside the DuckDB file: the same tables, the same rows from the
same writes, conflicts retried, a dead catalog named in one clear error."""

import json
import multiprocessing

import dagster as dg
import pandas as pd
import pytest

from resources import llm_cache, llm_structured, model_registry
from resources.remote_jobs import Ledger
from resources.warehouse import WarehouseResource
from tests.lake_postgres import lake_extensions, lake_postgres, make_lake  # noqa: F401 (fixtures)
from warmth_assets.lib.registry import ModelRow

pytestmark = pytest.mark.scaleout


def _columns(warehouse) -> dict[str, list[tuple]]:
    frame = warehouse.query_df(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, t.table_type "
        "FROM information_schema.columns c JOIN information_schema.tables t USING (table_catalog, table_schema, "
        "table_name) WHERE c.table_catalog = current_database() AND c.table_schema = 'main' "
        "ORDER BY c.table_name, c.ordinal_position")
    out: dict[str, list[tuple]] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(row.table_name, []).append((row.column_name, row.data_type, row.is_nullable, row.table_type))
    return out


def test_every_table_view_and_migration_exists_on_both_backends_alike(tmp_path, make_lake):
    file = _columns(WarehouseResource(database=str(tmp_path / "w.duckdb")))
    lake = _columns(make_lake())
    assert "llm_calls" in file and "corpus_type_counts" in file  # a table and a view of the base layout
    assert set(lake) - set(file) == {"warmth_schema_state"}  # the lake's record of the schema it was given
    assert {name: file[name] for name in file} == {name: lake[name] for name in file}
    assert dict(zip(*make_lake().query_df("SELECT version, name FROM schema_migrations ORDER BY version")
                    .to_dict("list").values())) == {1: "0001_llm_calls_response_format.sql",
                                                    2: "0002_structured_output_unsupported.sql"}


def _call(i: int, text: str = "answer") -> dict:
    return {"request_key": f"k{i:03d}", "provider": "openai", "endpoint": "http://127.0.0.1:1/v1", "model": "m",
            "template_version": "v1", "request_json": json.dumps({"i": i}), "response_text": f"{text} {i}",
            "finish_reason": "stop", "prompt_tokens": i, "completion_tokens": 2 * i, "latency_s": 0.5,
            "response_format": None}


class _Remote:
    def __init__(self, id, status):
        self.id, self.status = id, status


def _exercise(warehouse) -> dict:
    """The writes every deployment makes, on `warehouse`; what the tables hold afterwards (timestamps left out)."""
    llm_cache.insert_rows(warehouse, [_call(i) for i in range(60)])
    # Overlapping keys (a journal folded beside live rows, a key twice in one batch): the first answer stays.
    llm_cache.insert_rows(warehouse, [_call(i, "later") for i in range(40, 100)] + [_call(3, "later")])
    row = dict(slug="m1", source_kind="hf", source="org/one", family="f", chat_template="model",
               access="open_weight", styles=["warm"], checkpoints=["original"])
    model_registry.upsert(warehouse, [ModelRow(**row), ModelRow(**{**row, "slug": "m2"})])
    model_registry.upsert(warehouse, [ModelRow(**{**row, "source": "org/one-b", "checkpoints": ["original", "x"]})],
                          update=("source",))
    model_registry.upsert(warehouse, [ModelRow(**{**row, "slug": "m2", "source": "never"})], update=())
    ledger = Ledger(warehouse, "llm_batches", "batch_key", "batch_id", frozenset({"completed"}), "batch")
    ledger.record("b1", _Remote("batch_1", "validating"), {"endpoint": "e", "n_requests": 3})
    ledger.record("b1", _Remote("batch_1", "completed"), {"endpoint": "e", "n_requests": 3})
    ledger.mark("b1", "stored")
    llm_structured.record_rejection(warehouse, "e", "m", "no response_format")
    llm_structured.record_rejection(warehouse, "e", "m", "said twice")
    warehouse.replace_rows("validation_prompts", pd.DataFrame({"conversation_id": ["c1", "c2"],
                                                               "query_type": ["advice", "code"], "prompt": ["p", "q"]}))
    warehouse.replace_rows("validation_prompts", pd.DataFrame({"conversation_id": ["c3"], "query_type": ["advice"],
                                                               "prompt": ["r"]}))
    return {
        "calls": warehouse.query_df("SELECT request_key, response_text, prompt_tokens FROM llm_calls "
                                    "ORDER BY request_key").values.tolist(),
        "cached": sorted(llm_cache.cached(warehouse, ["k003", "k099", "k100"])),
        "registry": [(r.slug, r.source, list(r.checkpoints)) for r in model_registry.read_rows(warehouse)],
        "batches": warehouse.query_df("SELECT batch_key, batch_id, status, n_requests FROM llm_batches")
        .values.tolist(),
        "rejections": warehouse.query_df("SELECT endpoint, model, error FROM llm_structured_unsupported")
        .values.tolist(),
        "prompts": warehouse.query_df("SELECT * FROM validation_prompts").values.tolist(),
    }


def test_the_call_cache_registry_ledger_and_tables_hold_the_same_rows_on_both(tmp_path, make_lake):
    on_file = _exercise(WarehouseResource(database=str(tmp_path / "w.duckdb")))
    on_lake = _exercise(make_lake())
    assert on_lake == on_file
    assert len(on_file["calls"]) == 100 and on_file["calls"][3] == ["k003", "answer 3", 3]
    assert on_file["calls"][99] == ["k099", "later 99", 99]
    assert on_file["cached"] == ["k003", "k099"]
    assert on_file["registry"] == [("m1", "org/one-b", ["original"]), ("m2", "org/one", ["original"])]
    assert on_file["batches"] == [["b1", "batch_1", "stored", 3]]
    assert on_file["rejections"] == [["e", "m", "no response_format"]]
    assert on_file["prompts"] == [["c3", "advice", "r"]]


PARTS = dg.MultiPartitionsDefinition({"model": dg.StaticPartitionsDefinition(["m1", "m2"]),
                                      "checkpoint": dg.StaticPartitionsDefinition(["original", "warm-e1"])})
LOADED: list[pd.DataFrame] = []


@dg.asset(partitions_def=PARTS, io_manager_key="parquet_io_manager", config_schema={"round": int})
def scores(context) -> pd.DataFrame:
    dims = context.partition_key.keys_by_dimension
    n = 3 + context.op_config["round"]  # a later round writes more rows: the old ones must go
    return pd.DataFrame({"item": [f"{dims['model']}/{i}" for i in range(n)], "score": [float(i) / 4 for i in range(n)],
                         "round": context.op_config["round"], "evaluation_date": "2026-12-06",
                         "moving_target": dims["model"] == "m2"})


@dg.asset(io_manager_key="parquet_io_manager")
def summary(scores: pd.DataFrame) -> pd.DataFrame:
    LOADED.append(scores)
    return scores.groupby(["model", "checkpoint"], as_index=False)["score"].sum()


def _materialise(io) -> tuple[pd.DataFrame, pd.DataFrame]:
    instance = dg.DagsterInstance.ephemeral()
    for round_ in (0, 1):
        for key in PARTS.get_partition_keys():
            if round_ and key.keys_by_dimension["checkpoint"] == "warm-e1":
                continue  # round 1 rewrites the `original` partitions only
            result = dg.materialize([scores], partition_key=key, resources={"parquet_io_manager": io},
                                    instance=instance, run_config={"ops": {"scores": {"config": {"round": round_}}}})
            assert result.success
    LOADED.clear()
    assert dg.materialize([scores, summary], selection=[summary], resources={"parquet_io_manager": io},
                          instance=instance).success
    return LOADED[0], io.warehouse.query_df("SELECT * FROM scores_history ORDER BY model, checkpoint, item")


def test_partitions_written_and_read_through_either_io_manager_are_the_same(tmp_path, make_lake):
    from resources.partitioned_lake import PartitionedLakeIOManager
    from resources.partitioned_parquet import PartitionedParquetIOManager

    file = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    loaded_file, history_file = _materialise(PartitionedParquetIOManager(base_dir=str(tmp_path / "t"), warehouse=file))
    loaded_lake, history_lake = _materialise(PartitionedLakeIOManager(warehouse=make_lake()))

    def canonical(frame):
        return frame[sorted(frame.columns)].sort_values(["model", "checkpoint", "item"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(canonical(loaded_lake), canonical(loaded_file), check_dtype=False)
    # 2 models: `original` rewritten with 4 rows, `warm-e1` kept with 3.
    assert len(loaded_file) == 2 * 4 + 2 * 3 and set(loaded_file[loaded_file.checkpoint == "original"]["round"]) == {1}
    pd.testing.assert_frame_equal(canonical(history_lake), canonical(history_file), check_dtype=False)
    assert set(history_file["model"]) == {"m2"}  # only the moving target keeps dated history


def _overwrite_rounds(fields: dict, worker: int, rounds: int, queue) -> None:
    """One writer: each round rewrites its own partition of a shared table and answers overlapping calls."""
    from resources import lake as lake_module
    from resources.lake import LakeWarehouseResource

    lake = LakeWarehouseResource(**fields)
    from resources.partitioned_lake import overwrite_partition

    for r in range(rounds):
        frame = pd.DataFrame({"worker": [worker] * (5 + r % 3), "round": r, "i": range(5 + r % 3)})
        lake.write(lambda conn: overwrite_partition(conn, "shared_scores", {"model": f"w{worker}"}, frame),
                   ["shared_scores"])
        llm_cache.insert_rows(lake, [_call(k, f"w{worker}") for k in range(r * 3, r * 3 + 6)])
    queue.put(sum(lake_module.conflicts_retried.values()))


def test_concurrent_partition_overwrites_lose_nothing_and_duplicate_nothing(make_lake):
    lake = make_lake()
    lake.query_df("SELECT 1")  # schema applied once, before the writers start
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers, rounds = 4, 8
    fields = {name: getattr(lake, name) for name in type(lake).model_fields}
    procs = [ctx.Process(target=_overwrite_rounds, args=(fields, w, rounds, queue)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    assert [p.exitcode for p in procs] == [0] * workers
    retried = sum(queue.get(timeout=10) for _ in procs)
    rows = lake.query_df("SELECT model, worker, round, i FROM shared_scores ORDER BY model, i")
    last = (rounds - 1) % 3 + 5
    assert rows.groupby("model").size().to_dict() == {f"w{w}": last for w in range(workers)}
    assert set(rows["round"]) == {rounds - 1}
    calls = lake.query_df("SELECT request_key FROM llm_calls")["request_key"]
    assert len(calls) == calls.nunique() == (rounds - 1) * 3 + 6
    print(f"conflicts retried by {workers} writers x {rounds} rounds: {retried}")


def test_an_unreachable_catalog_is_one_clear_error_naming_the_server(make_lake, lake_postgres):
    from resources.lake import LakeUnavailable

    wrong = make_lake(pg_port=1, pg_password="s3cret-never-shown")
    with pytest.raises(LakeUnavailable) as raised:
        wrong.query_df("SELECT 1")
    message = str(raised.value)
    assert "Postgres at 127.0.0.1:1" in message and "WARMTH_PG_HOST" in message
    assert "s3cret-never-shown" not in message


def test_the_lake_ddl_drops_only_what_ducklake_lacks():
    from resources.lake import lake_ddl

    sql = ("CREATE TABLE t (\n    a VARCHAR PRIMARY KEY,\n    b INTEGER NOT NULL CHECK (b IN (1, 2)),  -- note, (x)\n"
           "    c VARCHAR[] NOT NULL DEFAULT ['x'],\n    d INTEGER,\n    PRIMARY KEY (a, d)\n);")
    assert lake_ddl(sql) == ("CREATE TABLE t (\n    a VARCHAR NOT NULL,\n    b INTEGER NOT NULL,  \n"
                             "    c VARCHAR[] NOT NULL DEFAULT ['x'],\n    d INTEGER\n);")


def test_maintenance_compacts_small_files(make_lake):
    lake = make_lake()
    for i in range(6):
        llm_cache.insert_rows(lake, [_call(i)])
    counts = lake.maintain(older_than_s=0)
    assert counts["live_files_before"] >= 6 and counts["live_files_after"] < counts["live_files_before"]
    assert len(lake.query_df("SELECT * FROM llm_calls")) == 6



@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 API on loopback (moto's server), one bucket, credentials in the environment as on a cluster."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="warmth-lake")
        yield s3
    finally:
        server.stop()


def test_a_lake_on_object_storage_holds_the_same_rows_and_writes_its_files_to_the_bucket(tmp_path, make_lake,
                                                                                        s3_bucket):
    on_file = _exercise(WarehouseResource(database=str(tmp_path / "w.duckdb")))
    lake = make_lake(data_path="s3://warmth-lake/lake/")
    assert _exercise(lake) == on_file
    keys = [o["Key"] for o in s3_bucket.list_objects_v2(Bucket="warmth-lake").get("Contents", [])]
    assert keys and all(k.startswith("lake/") and k.endswith(".parquet") for k in keys), keys


def test_the_call_layer_on_the_lake_folds_a_dead_runs_journal_and_never_pays_twice(tmp_path, make_lake,
                                                                                     openai_server, monkeypatch):
    """The journal fold on the lake: answers a run received but could not store (the store failed) are kept in its
    journal, folded into the lake's call cache by the next run, and not sent again."""
    from resources.llm import LLMResource
    from tests.resources.test_llm import make_llm, requests_for

    lake = make_lake()
    requests = requests_for(["kept 1", "kept 2", "kept 3"])
    monkeypatch.setattr(LLMResource, "store_rows", lambda self, rows: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        make_llm(tmp_path, openai_server, warehouse=lake).complete_many(requests)
    monkeypatch.undo()
    assert len(list(lake.journal_dir.glob("*.jsonl"))) == 1
    sent = openai_server.total_attempts
    results, usage = make_llm(tmp_path, openai_server, warehouse=lake).complete_many(requests)
    assert usage.cache_hits == 3 and openai_server.total_attempts == sent
    assert [r.text for r in results] == ["answer to: kept 1", "answer to: kept 2", "answer to: kept 3"]
    keys = lake.query_df("SELECT request_key FROM llm_calls")["request_key"]
    assert len(keys) == keys.nunique() == 3 and not list(lake.journal_dir.glob("*.jsonl"))

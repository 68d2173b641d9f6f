"""Versioned migrations: a new column reaches an existing warehouse, once, and a broken file changes nothing."""

import re

import duckdb
import pytest

from resources import warehouse as wh
from resources.warehouse import WarehouseMigrationError, WarehouseResource

LLM_ROW = ("INSERT INTO llm_calls (request_key, provider, endpoint, model, template_version, request_json, "
           "response_text, finish_reason, prompt_tokens, completion_tokens, latency_s) "
           "VALUES ('k1', 'openai', 'chat', 'gpt-4o-mini', 'v1', '{}', 'hello', 'stop', 3, 1, 0.5)")


def make_old_warehouse(db) -> None:
    """A warehouse as the layout before migrations left it: only the base sql/*.sql files, one cached call."""
    with duckdb.connect(str(db)) as conn:
        for path in wh.schema_files():
            conn.execute(path.read_text(encoding="utf-8"))
        conn.execute(LLM_ROW)


def columns(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(f'DESCRIBE "{table}"').fetchall()]


def recorded(db) -> list[tuple[int, str]]:
    with duckdb.connect(str(db)) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def test_the_migration_files_are_well_formed():
    migrations = wh.migration_files()
    assert migrations, "sql/migrations/ should hold at least the first migration"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))  # no gaps, no duplicates
    assert migrations[0].name == "0001_llm_calls_response_format.sql"
    assert not any(p.parent.name == "migrations" for p in wh.schema_files())  # the base layout stays apart


def test_an_existing_warehouse_gains_the_new_column_with_its_rows_intact(tmp_path):
    db = tmp_path / "w.duckdb"
    make_old_warehouse(db)
    with duckdb.connect(str(db)) as conn:
        assert "response_format" not in columns(conn, "llm_calls")

    with WarehouseResource(database=str(db)).get_connection() as conn:
        assert columns(conn, "llm_calls")[-1] == "response_format"
        rows = conn.execute("SELECT request_key, response_text, prompt_tokens, response_format FROM llm_calls")
        assert rows.fetchall() == [("k1", "hello", 3, None)]
        # The column can be written (nobody does yet) and the existing BY NAME inserts still work.
        conn.execute("INSERT INTO llm_calls BY NAME SELECT 'k2' AS request_key, 'openai' AS provider, "
                     "'chat' AS endpoint, 'm' AS model, 'v1' AS template_version, '{}' AS request_json, "
                     "'x' AS response_text, 'stop' AS finish_reason, 1 AS prompt_tokens, "
                     "1 AS completion_tokens, 0.1 AS latency_s, '{\"type\": \"json_object\"}' AS response_format")
        assert conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 2
    assert [v for v, _ in recorded(db)] == [m.version for m in wh.migration_files()]


def test_a_fresh_warehouse_has_the_same_layout_as_a_migrated_one(tmp_path):
    old, fresh = tmp_path / "old.duckdb", tmp_path / "fresh.duckdb"
    make_old_warehouse(old)
    for db in (old, fresh):
        with WarehouseResource(database=str(db)).get_connection():
            pass
    with duckdb.connect(str(old)) as a, duckdb.connect(str(fresh)) as b:
        for table in ("llm_calls", "schema_migrations"):
            assert a.execute(f"DESCRIBE {table}").fetchall() == b.execute(f"DESCRIBE {table}").fetchall()


def test_migrations_apply_once(tmp_path):
    db = tmp_path / "w.duckdb"
    make_old_warehouse(db)
    names = [m.name for m in wh.migration_files()]
    with duckdb.connect(str(db)) as conn:
        assert wh.apply_schema(conn) == names
        assert wh.apply_schema(conn) == []  # the same connection again: nothing pending
    with duckdb.connect(str(db)) as conn:  # a new process (no cache) reopening: nothing applied twice
        assert wh.apply_schema(conn) == []
    with WarehouseResource(database=str(db)).get_connection():
        pass
    rows = recorded(db)
    assert [name for _, name in rows] == names and len(rows) == len(set(rows))


def test_pending_migrations_apply_in_order_and_later_ones_reach_a_migrated_warehouse(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0002_second.sql").write_text("ALTER TABLE cost_estimate ADD COLUMN note VARCHAR;\n"
                                            "UPDATE cost_estimate SET note = 'n';")
    (folder / "0001_first.sql").write_text("CREATE TABLE mig_order (step INTEGER);")
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        assert wh.apply_schema(conn, folder) == ["0001_first.sql", "0002_second.sql"]
        (folder / "0003_third.sql").write_text("INSERT INTO mig_order VALUES (3);")
        assert wh.apply_schema(conn, folder) == ["0003_third.sql"]
        assert conn.execute("SELECT step FROM mig_order").fetchall() == [(3,)]
        assert "note" in columns(conn, "cost_estimate")
    assert recorded(db) == [(1, "0001_first.sql"), (2, "0002_second.sql"), (3, "0003_third.sql")]


def test_a_broken_migration_names_the_file_and_records_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_good.sql").write_text("ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS response_format VARCHAR;")
    # The first statement succeeds, the second fails: the transaction must take the first back too.
    (folder / "0002_broken.sql").write_text("ALTER TABLE llm_calls ADD COLUMN half_done VARCHAR;\n"
                                            "ALTER TABLE no_such_table ADD COLUMN x VARCHAR;")
    (folder / "0003_after.sql").write_text("ALTER TABLE llm_calls ADD COLUMN never_reached VARCHAR;")
    monkeypatch.setattr(wh, "MIGRATIONS_DIR", folder)
    db = tmp_path / "w.duckdb"
    make_old_warehouse(db)

    for _ in range(2):  # a failed migration is not cached as applied: the next open tries (and fails) again
        with pytest.raises(WarehouseMigrationError, match=re.escape(str(folder / "0002_broken.sql"))):
            with WarehouseResource(database=str(db)).get_connection():
                pass
    assert recorded(db) == [(1, "0001_good.sql")]
    with duckdb.connect(str(db)) as conn:
        cols = columns(conn, "llm_calls")
        assert "response_format" in cols and "half_done" not in cols and "never_reached" not in cols
        assert conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 1

    # Fixed, it applies (with what follows it) on the next open.
    (folder / "0002_broken.sql").write_text("ALTER TABLE llm_calls ADD COLUMN half_done VARCHAR;")
    with WarehouseResource(database=str(db)).get_connection() as conn:
        assert {"half_done", "never_reached"} <= set(columns(conn, "llm_calls"))
    assert [v for v, _ in recorded(db)] == [1, 2, 3]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "add_column.sql"])
def test_a_misnamed_migration_file_is_refused(tmp_path, name):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / name).write_text("SELECT 1;")
    with pytest.raises(WarehouseMigrationError, match=re.escape(name)):
        wh.migration_files(folder)


def test_two_files_with_one_version_are_refused(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("SELECT 1;")
    (folder / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(WarehouseMigrationError, match="version 1"):
        wh.migration_files(folder)


def test_a_new_migration_file_is_picked_up_by_a_running_process(tmp_path, monkeypatch):
    """The once-per-process cache is keyed by the migration files too, not only the base layout."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr(wh, "MIGRATIONS_DIR", folder)
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    with warehouse.get_connection() as conn:
        assert "late" not in columns(conn, "cost_estimate")
    (folder / "0001_late.sql").write_text("ALTER TABLE cost_estimate ADD COLUMN late VARCHAR;")
    with warehouse.get_connection() as conn:
        assert "late" in columns(conn, "cost_estimate")

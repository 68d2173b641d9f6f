import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from resources.warehouse import WarehouseLockTimeout, WarehouseResource, exclusive_lock

REPO = Path(__file__).resolve().parents[2]


def test_schema_is_applied_and_idempotent(tmp_path):
    db = tmp_path / "w.duckdb"
    for _ in range(2):
        with WarehouseResource(database=str(db)).get_connection() as conn:
            conn.execute("SELECT * FROM model_registry").fetchall()
    from resources.warehouse import apply_schema

    with duckdb.connect(str(db)) as conn:  # applying twice on one connection must not fail either
        apply_schema(conn)
        apply_schema(conn)


def test_duckdb_itself_refuses_a_second_writing_process(tmp_path):
    """Why the lock exists: DuckDB gives the file to one process at a time."""
    db = tmp_path / "w.duckdb"
    holder = duckdb.connect(str(db))
    try:
        code = f"import duckdb; duckdb.connect({str(db)!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "lock" in proc.stderr.lower()
    finally:
        holder.close()


def test_second_process_waits_for_the_lock_instead_of_failing(tmp_path):
    """Synchronised by the child's own lines, not by sleeps or durations: the parent holds the warehouse,
    the child announces it is trying, then that its first attempt was refused (it is waiting); only then
    does the parent let go, and the child gets the connection and sees what the parent wrote."""
    db = tmp_path / "w.duckdb"
    warehouse = WarehouseResource(database=str(db))
    code = (
        "from resources.warehouse import WarehouseResource;"
        f"w = WarehouseResource(database={str(db)!r});"
        "print('trying', flush=True);"
        "cm = w.get_connection(on_wait=lambda: print('blocked', flush=True));"
        "c = cm.__enter__();"
        "print('acquired', c.execute('SELECT x FROM t').fetchone()[0], flush=True);"
        "cm.__exit__(None, None, None)"
    )
    with warehouse.get_connection() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "trying"
            assert proc.stdout.readline().strip() == "blocked", "the child's first attempt should be refused"
            assert proc.poll() is None, "the child should be waiting on the lock, not failing"
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert out.strip() == "acquired 1"


def test_an_uncontended_lock_does_not_report_waiting(tmp_path):
    waits = []
    with exclusive_lock(tmp_path / "w.duckdb.lock", 0, on_wait=lambda: waits.append(1)):
        pass
    assert waits == []


def test_lock_timeout_names_the_file(tmp_path):
    """The holder keeps the lock until the parent closes its stdin, so the 0.3 s wait always times out."""
    lock = tmp_path / "w.duckdb.lock"
    code = (
        "import sys; from pathlib import Path; from resources.warehouse import exclusive_lock;"
        f"cm = exclusive_lock(Path({str(lock)!r}), 5); cm.__enter__(); print('held', flush=True);"
        "sys.stdin.read()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        waits = []
        with pytest.raises(WarehouseLockTimeout, match=re.escape(str(lock))):
            with exclusive_lock(lock, 0.3, on_wait=lambda: waits.append(1)):
                pass
        assert waits == [1]  # called once, however many attempts the wait took
        assert proc.poll() is None  # the holder held it throughout
    finally:
        proc.kill()
        proc.wait()


def test_a_file_written_by_a_newer_duckdb_is_one_clear_error(tmp_path):
    """duckdb 2.x files (earlier installs of this project) cannot be read by the pinned 1.5.5: say what to do. The
    fixture is a one-table file written by duckdb 2.0.1 itself (in a venv of its own), gzipped."""
    import gzip

    from resources.warehouse import WarehouseResource, WarehouseTooNew

    path = tmp_path / "w.duckdb"
    path.write_bytes(gzip.decompress((Path(__file__).parents[1] / "fixtures" / "written_by_duckdb_2.0.1.duckdb.gz")
                                     .read_bytes()))
    with pytest.raises(WarehouseTooNew, match="EXPORT DATABASE"):
        WarehouseResource(database=str(path)).query_df("SELECT 1")

"""The DuckDB warehouse: one database file, every writer serialised across processes.

Schema rule: the `sql/0NN_*.sql` files are the base layout (idempotent CREATE ... IF NOT EXISTS, applied
first) and are never edited to change an existing table. A new column (or any change to an existing
table) = a new migration file `sql/migrations/NNNN_<what>.sql`, applied once, in order, in a transaction,
and recorded in `schema_migrations` (see sql/migrations/README.md).

DuckDB admits one writing process at a time; Dagster's own DuckDB resource retries the lock
for a while and then fails. Parallel partition runs (the multiprocess executor, several runs)
would hit that, so every connection here first takes an exclusive `flock` on a sibling lock
file, waits for it as long as `lock_timeout_s` allows, and is closed as soon as the block ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ClassVar, Iterator, NamedTuple, Sequence, TypeVar

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from warmth_assets.lib import paths

log = logging.getLogger(__name__)
T = TypeVar("T")

SQL_DIR = paths.repo_root() / "sql"
# Read at call time (not bound as a default argument), so a test can point it at another folder.
MIGRATIONS_DIR = SQL_DIR / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")
_schema_applied: set[tuple] = set()


class WarehouseLockTimeout(TimeoutError):
    pass


class WarehouseTooNew(RuntimeError):
    """The file was written by a newer DuckDB than the pinned one, which cannot read it."""


class WarehouseMigrationError(RuntimeError):
    """A migration failed (its transaction was rolled back, its version not recorded) or is misnamed."""


@contextmanager
def exclusive_lock(lock_path: Path, timeout_s: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path`; `on_wait` is called once if the first attempt is refused."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    waited = True
                    if on_wait is not None:
                        on_wait()
                if time.monotonic() > deadline:
                    raise WarehouseLockTimeout(
                        f"waited {timeout_s:g} s for the warehouse lock {lock_path}; another process "
                        "(a run, a notebook, a dashboard) is holding the DuckDB file: close it and retry"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def merge_sql(table: str, keys: Sequence[str], columns: Sequence[str], update: Sequence[str] = (),
              source: str | None = None, touch: str | None = None) -> str:
    """Insert-if-absent or upsert by `keys` as one MERGE: the same SQL on both backends (DuckLake has no
    primary keys, so no ON CONFLICT). `source`: a relation with `columns`; default one row of parameters.
    `update`: columns a matched row takes from the source (none: a matched row is left alone); `touch`: a
    timestamp column set to now() when a matched row is updated. Run it through `write(..., exclusive=True)`:
    the match is only sound while no other writer inserts the same keys."""
    source = source or "SELECT " + ", ".join(f"? AS {c}" for c in columns)
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    sql = f"MERGE INTO {table} AS t USING ({source}) AS s ON {on}"
    sets = [f"{c} = s.{c}" for c in update] + ([f"{touch} = now()"] if touch and update else [])
    if sets:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(sets)
    return sql + f" WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('s.' + c for c in columns)})"


def schema_files() -> list[Path]:
    """The base layout: sql/*.sql (not the migrations folder), in name order."""
    return sorted(SQL_DIR.glob("*.sql"))


class Migration(NamedTuple):
    version: int
    name: str  # the file name, e.g. 0001_llm_calls_response_format.sql
    path: Path


def migration_files(migrations_dir: Path | None = None) -> list[Migration]:
    """Every `NNNN_<name>.sql` of the migrations folder, by version; a misnamed or duplicate file is an error."""
    folder = Path(migrations_dir) if migrations_dir is not None else MIGRATIONS_DIR
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise WarehouseMigrationError(f"{path}: a migration file is named NNNN_<name>.sql (four digits)")
        version = int(match.group(1))
        if version in found:
            raise WarehouseMigrationError(f"{path}: version {version} is also {found[version].path}")
        found[version] = Migration(version, path.name, path)
    return [found[v] for v in sorted(found)]


def schema_signature(migrations_dir: Path | None = None) -> tuple:
    """What the schema of this code is: every base and migration file, with its modification time."""
    folder = Path(migrations_dir) if migrations_dir is not None else MIGRATIONS_DIR
    files = schema_files() + sorted(folder.glob("*.sql"))
    return tuple((str(p), p.stat().st_mtime_ns) for p in files)


def apply_base_layout(conn: duckdb.DuckDBPyConnection) -> None:
    """Run every sql/*.sql file in name order; each is written to be idempotent."""
    for path in schema_files():
        try:
            conn.execute(path.read_text(encoding="utf-8"))
        except duckdb.Error as exc:
            raise RuntimeError(f"{path}: {exc}") from exc


def apply_migrations(conn: duckdb.DuckDBPyConnection, migrations_dir: Path | None = None,
                     translate: Callable[[str], str] = lambda sql: sql) -> list[str]:
    """Apply, in version order, each migration not yet in `schema_migrations`; returns the names applied.

    Each runs in its own transaction together with the row that records it: a failure rolls both back
    and raises WarehouseMigrationError naming the file (later migrations are not tried). `translate`: the
    DDL as the backend takes it (the lake's `lake_ddl`).
    """
    migrations = migration_files(migrations_dir)
    conn.execute(translate(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    ))
    recorded = {row[0]: row[1] for row in conn.execute("SELECT version, name FROM schema_migrations").fetchall()}
    known = {m.version for m in migrations}
    unknown = sorted(v for v in recorded if v not in known)
    if unknown:
        log.warning("the warehouse has migrations this code does not know (%s): it was migrated by newer code",
                    ", ".join(f"{v} {recorded[v]}" for v in unknown))
    applied = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        sql = translate(migration.path.read_text(encoding="utf-8"))
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                         [migration.version, migration.name])
            conn.execute("COMMIT")
        except duckdb.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # the failure may have ended the transaction already
            raise WarehouseMigrationError(
                f"migration {migration.path} failed and was rolled back "
                f"(version {migration.version} not recorded): {exc}"
            ) from exc
        log.info("warehouse migration %s applied", migration.name)
        applied.append(migration.name)
    return applied


def apply_schema(conn: duckdb.DuckDBPyConnection, migrations_dir: Path | None = None) -> list[str]:
    """The base layout, then the pending migrations; returns the names of the migrations applied."""
    apply_base_layout(conn)
    return apply_migrations(conn, migrations_dir)


class WarehouseResource(DuckDBResource):
    """DuckDB access for assets: `with warehouse.get_connection() as conn: ...` (open, use, close).

    This is the embedded backend (`[warehouse] backend = "duckdb"`): one file, one writer at a time. The lake
    backend (resources/lake.py) has the same methods; code that writes goes through `write` so that each
    backend can make the write safe its own way (here: the file lock is already exclusive).
    """

    backend: ClassVar[str] = "duckdb"
    lock_timeout_s: float = Field(900.0, description="How long a writer waits for another to finish")

    @property
    def lock_path(self) -> Path:
        return Path(f"{self.database}.lock")

    @property
    def journal_dir(self) -> Path:
        """Where the call layer journals answers until they are folded into `llm_calls`."""
        return Path(f"{self.database}.journal")

    @property
    def location(self) -> str:
        """Where the warehouse is, for messages and metadata (never a password)."""
        return str(self.database)

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], tables: Sequence[str], *,
              exclusive: bool = False) -> T:
        """`fn(conn)` in one transaction. `tables`: those it writes; `exclusive`: it reads them to decide what to
        write (an insert-if-absent, an upsert), so no other writer of those tables may run meanwhile. Here the
        file lock already makes every connection exclusive; the lake backend locks and retries."""
        with self.get_connection() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return result

    @contextmanager
    def get_connection(self, on_wait: Callable[[], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the warehouse under its lock (`on_wait`: called once if another process holds it)."""
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.lock_path, self.lock_timeout_s, on_wait=on_wait):
            try:
                conn = duckdb.connect(self.database, config={"custom_user_agent": "warmth", **self.connection_config})
            except duckdb.IOException as exc:
                if "created with an newer version of DuckDB" not in str(exc):
                    raise
                raise WarehouseTooNew(
                    f"{self.database} was written by a newer DuckDB than this project's {duckdb.__version__} (pinned "
                    "for the DuckLake extension wheels): with that newer duckdb run EXPORT DATABASE 'dir', then "
                    "IMPORT DATABASE 'dir' here into a fresh file, or point WARMTH_HOME at a new folder") from None
            try:
                # Once per process and schema version (base files and migrations), not on every connection.
                key = (os.path.abspath(self.database), str(MIGRATIONS_DIR), schema_signature())
                if key not in _schema_applied:
                    apply_schema(conn)
                    _schema_applied.add(key)
                yield conn
            finally:
                conn.close()

    def maintain(self) -> dict[str, int]:
        """Compaction: here a checkpoint of the write-ahead log into the file (the lake does more)."""
        with self.get_connection() as conn:
            conn.execute("CHECKPOINT")
        return {}

    def query_df(self, sql: str, params: list | None = None):
        with self.get_connection() as conn:
            return conn.execute(sql, params or []).df()

    def replace_rows(self, table: str, frame) -> int:
        """Replace every row of `table` with `frame` (matched by column name), atomically."""
        def replace(conn: duckdb.DuckDBPyConnection) -> None:
            conn.register("_incoming", frame)
            try:
                conn.execute(f'DELETE FROM "{table}"')
                conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _incoming')
            finally:
                conn.unregister("_incoming")

        self.write(replace, [table])
        return len(frame)

    def has_table(self, name: str) -> bool:
        """Whether a table or view exists (partitioned assets' views appear with their first partition)."""
        return bool(len(self.query_df(
            "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_catalog = current_database()",
            [name])))

"""The warehouse beyond one machine (`[warehouse] backend = "ducklake"`): DuckDB's lakehouse format, its catalog in
Postgres and its Parquet files under a shared path or an `s3://` URL, so that steps on several nodes write at once.

Same client, same SQL as the embedded file (resources/warehouse.py); what differs is how a write is made safe:
- DuckLake has no primary keys, so inserts-if-absent and upserts are MERGEs (`warehouse.merge_sql`) run under a
  Postgres advisory lock per table (`write(..., exclusive=True)`): no other node inserts the same key meanwhile.
  The lock is the session's: a node that dies releases it with its connection.
- Partition overwrites (delete the partition's rows, insert the new ones) run optimistically; DuckLake refuses the
  commit of one of two overlapping writers and does not retry a delete itself, so `write` retries the whole
  transaction on `duckdb.TransactionException` with jittered backoff, and counts and logs each conflict.
- DDL and views run once per schema version, not per step: the base layout and migrations (translated: no
  PRIMARY KEY, UNIQUE or CHECK) under an advisory lock, recorded by content hash in `warmth_schema_state`.
- The extensions come from PyPI wheels (`duckdb-extension-ducklake`, `-postgres`), installed once into a folder of
  ours; autoinstall and autoload are off, so nothing is ever fetched.
The Postgres password reaches DuckDB as an in-memory secret; it is never in a file, a log or an error message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ClassVar, Iterator, Sequence, TypeVar

import duckdb
from pydantic import Field

from resources.warehouse import (
    MIGRATIONS_DIR,
    WarehouseMigrationError,
    WarehouseResource,
    apply_migrations,
    migration_files,
    schema_files,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
CATALOG = "lake"
EXTENSIONS = ("ducklake", "postgres")
SCHEMA_LOCK = "warmth:schema"
_roots: dict[tuple, duckdb.DuckDBPyConnection] = {}
_roots_lock = threading.Lock()
_schema_applied: set[tuple] = set()
conflicts_retried: dict[str, int] = {}  # table -> conflicts retried in this process


class LakeUnavailable(RuntimeError):
    """The lake's catalog (Postgres) or its extensions cannot be reached; the message names the server."""


class LakeWriteConflict(RuntimeError):
    """A write still conflicted with other writers after every retry."""


def is_conflict(exc: BaseException) -> bool:
    """Another writer committed first: DuckLake refused this commit, or a table this transaction creates appeared."""
    return isinstance(exc, duckdb.TransactionException) or (
        isinstance(exc, duckdb.CatalogException) and "already exists" in str(exc))


def lake_ddl(sql: str) -> str:
    """The DDL of `sql` as DuckLake takes it: no PRIMARY KEY, UNIQUE or CHECK constraints (it has none; the keys
    are kept by the MERGEs that write those tables). Column names, types, NOT NULL and defaults are unchanged."""
    sql = re.sub(r"--[^\n]*", "", sql)  # comments (ours hold no "--" inside string literals)
    out, i = [], 0
    pattern = re.compile(r",?\s*\b(PRIMARY\s+KEY|UNIQUE|CHECK)\b\s*", re.IGNORECASE)
    for match in pattern.finditer(sql):
        if match.start() < i:
            continue
        end = match.end()
        if end < len(sql) and sql[end] == "(":  # a parenthesised list or condition: skip it whole
            depth, j = 0, end
            while j < len(sql):
                depth += {"(": 1, ")": -1}.get(sql[j], 0)
                j += 1
                if depth == 0:
                    break
            end = j
        # An inline constraint keeps its column (and the NOT NULL a primary key implies); a table constraint
        # ("..., PRIMARY KEY (a, b)") goes with its comma.
        table_level = match.group(0).lstrip().startswith(",")
        keep = "" if table_level else (" NOT NULL" if match.group(1).upper().startswith("PRIMARY") else "")
        out.append(sql[i:match.start()] + keep + (" " if not table_level and sql[end:end + 1] not in ",\n)" else ""))
        i = end
    out.append(sql[i:])
    return re.sub(r"NOT NULL(\s+NOT NULL)+", "NOT NULL", "".join(out))


def schema_hash(migrations_dir: Path | None = None) -> str:
    """The schema this code expects, by content (mtimes differ between nodes)."""
    digest = hashlib.sha256()
    for path in schema_files() + [m.path for m in migration_files(migrations_dir)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def s3_secret(env: dict) -> str:
    """The in-memory DuckDB secret for an s3:// data path, from the standard AWS variables (never stored):
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL for S3-compatible stores."""
    missing = [n for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(n)]
    if missing:
        raise LakeUnavailable(f"the lake's data path is on object storage but {', '.join(missing)} is not set")
    parts = [f"KEY_ID {_quote(env['AWS_ACCESS_KEY_ID'])}", f"SECRET {_quote(env['AWS_SECRET_ACCESS_KEY'])}",
             f"REGION {_quote(env.get('AWS_REGION') or 'us-east-1')}"]
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    if endpoint:
        host = re.sub(r"^https?://", "", endpoint).rstrip("/")
        parts += [f"ENDPOINT {_quote(host)}", "URL_STYLE 'path'",
                  f"USE_SSL {'false' if endpoint.startswith('http://') else 'true'}"]
    return "CREATE SECRET warmth_s3 (TYPE s3, " + ", ".join(parts) + ")"


def install_extensions(folder: Path, names: Sequence[str] = EXTENSIONS) -> None:
    """Install the extensions from their wheels into `folder` (once: about 80 MB); nothing is downloaded."""
    marker = folder / f".installed-{duckdb.__version__}-{'-'.join(names)}"
    if marker.exists():
        return
    try:
        import duckdb_extensions
    except ImportError as exc:
        raise LakeUnavailable("the ducklake backend needs the scale-out extra: pip install -e '.[scaleout]' "
                              "(duckdb-extension-ducklake and -postgres, built for this duckdb)") from exc
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    # Steps starting together on one node would install into the same folder at once: one installs, the rest wait.
    with open(folder / ".install.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        con = duckdb.connect(config={"extension_directory": str(folder), "autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        try:
            for name in names:
                duckdb_extensions.import_extension(name, con=con)
        finally:
            con.close()
        marker.touch()


class LakeWarehouseResource(WarehouseResource):
    """The warehouse as a DuckLake: `get_connection()` yields a connection whose default catalog is the lake."""

    backend: ClassVar[str] = "ducklake"
    database: str = Field(":memory:", description="Unused: the data live in the lake")
    data_path: str = Field(description="The lake's Parquet files: a folder every node sees, or an s3:// URL")
    metadata_schema: str = Field("warmth_lake", description="Postgres schema of the lake's catalog tables")
    pg_host: str = Field(description="Postgres of the catalog (WARMTH_PG_HOST)")
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_db: str = "warmth"
    pg_password: str = Field("", description="From WARMTH_PG_PASSWORD through EnvVar; never stored")
    extension_dir: str = Field(description="Where the extension wheels are installed once")
    journals: str = Field(description="The call layer's journals (per node: each node folds its own)")
    inlining_row_limit: int = Field(0, ge=0, description="Inserts of up to this many rows stay in the catalog "
                                    "until compaction flushes them to Parquet; 0: every insert writes a file")
    write_retries: int = Field(30, ge=0, description="Retries of a write refused by a concurrent writer")
    retry_base_s: float = Field(0.05, gt=0)

    @property
    def journal_dir(self) -> Path:
        return Path(self.journals)

    @property
    def on_object_storage(self) -> bool:
        return self.data_path.startswith("s3://")

    @property
    def location(self) -> str:
        return f"ducklake on postgres {self.pg_host}:{self.pg_port}/{self.pg_db} (schema {self.metadata_schema}), " \
               f"data {self.data_path}"

    def _root(self) -> duckdb.DuckDBPyConnection:
        """This process's database with the lake attached; every use opens a cursor on it (attach costs ~0.5 s)."""
        key = (os.getpid(), self.pg_host, self.pg_port, self.pg_db, self.pg_user, self.metadata_schema,
               self.data_path, self.inlining_row_limit)
        with _roots_lock:
            root = _roots.get(key)
            if root is None:
                extensions = EXTENSIONS + (("httpfs",) if self.on_object_storage else ())
                install_extensions(Path(self.extension_dir), extensions)
                root = duckdb.connect(config={
                    "custom_user_agent": "warmth", "extension_directory": self.extension_dir,
                    "autoinstall_known_extensions": False, "autoload_known_extensions": False,
                    **self.connection_config})
                try:
                    for name in extensions:
                        root.execute(f"LOAD {name}")
                    if self.on_object_storage:
                        root.execute(s3_secret(os.environ))
                    root.execute(
                        f"CREATE SECRET warmth_pg (TYPE postgres, HOST {_quote(self.pg_host)}, PORT {int(self.pg_port)}, "
                        f"DATABASE {_quote(self.pg_db)}, USER {_quote(self.pg_user)}, "
                        f"PASSWORD {_quote(self.pg_password)})")
                    root.execute(
                        f"CREATE SECRET warmth_lake (TYPE ducklake, METADATA_PATH '', "
                        f"DATA_PATH {_quote(self.data_path)}, METADATA_SCHEMA {_quote(self.metadata_schema)}, "
                        "METADATA_PARAMETERS MAP {'TYPE': 'postgres', 'SECRET': 'warmth_pg'})")
                    root.execute(f"ATTACH 'ducklake:warmth_lake' AS {CATALOG} "
                                 f"(DATA_INLINING_ROW_LIMIT {int(self.inlining_row_limit)})")
                except duckdb.Error as exc:
                    root.close()
                    raise LakeUnavailable(
                        f"the warehouse's catalog, Postgres at {self.pg_host}:{self.pg_port} (database {self.pg_db}), "
                        f"could not be attached: {str(exc).splitlines()[-1][:300]}. Is it running (`warmth cluster "
                        "status`) and are WARMTH_PG_HOST, WARMTH_PG_PORT, WARMTH_PG_USER, WARMTH_PG_PASSWORD right?"
                    ) from None
                _roots[key] = root
            return root

    def _forget_root(self) -> None:
        """Drop this process's attached database (after the catalog went away, a new attach is needed)."""
        with _roots_lock:
            for key in [k for k in _roots if k[0] == os.getpid() and k[1:3] == (self.pg_host, self.pg_port)]:
                try:
                    _roots.pop(key).close()
                except duckdb.Error:
                    pass

    @contextmanager
    def get_connection(self, on_wait: Callable[[], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the lake (no lock: DuckLake admits concurrent writers)."""
        conn = self._root().cursor()
        try:
            conn.execute(f"USE {CATALOG}")
            key = (os.getpid(), self.pg_host, self.pg_port, self.pg_db, self.metadata_schema, str(MIGRATIONS_DIR))
            if key not in _schema_applied:
                self._apply_schema_once(conn)
                _schema_applied.add(key)
            yield conn
        except duckdb.IOException as exc:
            if "postgres" in str(exc).lower() or "connect" in str(exc).lower():
                self._forget_root()
                raise LakeUnavailable(
                    f"the warehouse's catalog, Postgres at {self.pg_host}:{self.pg_port} (database {self.pg_db}), "
                    f"failed during the step: {str(exc).splitlines()[0][:300]}; re-run once it is back "
                    "(answers already paid for are journaled)") from exc
            raise
        finally:
            conn.close()

    # -- locks ------------------------------------------------------------------------------------------------
    @contextmanager
    def _advisory_locks(self, names: Sequence[str]) -> Iterator[None]:
        """Postgres session advisory locks on `names` (sorted, so two writers never wait on each other in a cycle)."""
        import psycopg2

        try:
            pg = psycopg2.connect(host=self.pg_host, port=self.pg_port, user=self.pg_user, dbname=self.pg_db,
                                  password=self.pg_password or None, connect_timeout=10,
                                  application_name="warmth-warehouse-lock")
        except psycopg2.OperationalError as exc:
            raise LakeUnavailable(
                f"the warehouse's catalog, Postgres at {self.pg_host}:{self.pg_port} (database {self.pg_db}), "
                f"refused the lock connection: {str(exc).strip().splitlines()[0][:300]}") from None
        try:
            pg.autocommit = True
            with pg.cursor() as cur:
                cur.execute("SET lock_timeout = %s", [f"{int(self.lock_timeout_s * 1000)}ms"])
                for name in sorted(set(names)):
                    cur.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"warmth:{self.metadata_schema}:{name}"])
            yield
        finally:
            pg.close()  # ends the session: every advisory lock it held is released

    def _apply_schema_once(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Base layout and migrations, translated, once per schema version for the whole lake."""
        wanted = schema_hash()
        if self._missing(conn):
            with self._advisory_locks([SCHEMA_LOCK]):
                conn.execute("CREATE TABLE IF NOT EXISTS warmth_schema_state (schema_hash VARCHAR NOT NULL, "
                             "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        if conn.execute("SELECT count(*) FROM warmth_schema_state WHERE schema_hash = ?", [wanted]).fetchone()[0]:
            return
        with self._advisory_locks([SCHEMA_LOCK]):
            conn.execute("SELECT 1")  # a new transaction: sees what a writer before us committed
            if conn.execute("SELECT count(*) FROM warmth_schema_state WHERE schema_hash = ?", [wanted]).fetchone()[0]:
                return
            # One transaction, one catalog commit: statement by statement a fresh lake took about 10 s.
            conn.execute("BEGIN TRANSACTION")
            for path in schema_files():
                try:
                    conn.execute(lake_ddl(path.read_text(encoding="utf-8")))
                except duckdb.Error as exc:
                    conn.execute("ROLLBACK")
                    raise WarehouseMigrationError(f"{path} (as DuckLake DDL): {exc}") from exc
            conn.execute("COMMIT")
            apply_migrations(conn, translate=lake_ddl)
            conn.execute("INSERT INTO warmth_schema_state (schema_hash) VALUES (?)", [wanted])
            log.info("lake schema %s applied on %s", wanted, self.location)

    @staticmethod
    def _missing(conn: duckdb.DuckDBPyConnection) -> bool:
        return not conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND "
                                "table_name = 'warmth_schema_state'", [CATALOG]).fetchone()[0]

    # -- writes -----------------------------------------------------------------------------------------------
    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], tables: Sequence[str], *,
              exclusive: bool = False) -> T:
        """`fn(conn)` in one transaction, retried whole when DuckLake refuses its commit because another writer
        changed the same table meanwhile. `exclusive`: under the tables' advisory locks as well (for MERGEs)."""
        rng = random.Random()
        for attempt in range(self.write_retries + 1):
            locks = self._advisory_locks(tables) if exclusive else _nothing()
            with locks, self.get_connection() as conn:
                conn.execute("BEGIN TRANSACTION")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException as exc:
                    try:
                        conn.execute("ROLLBACK")
                    except duckdb.Error:
                        pass  # the failure may have ended the transaction already
                    if not is_conflict(exc):
                        raise
                    if attempt == self.write_retries:
                        raise LakeWriteConflict(
                            f"a write to {', '.join(tables)} conflicted with other writers {attempt + 1} times; "
                            f"re-run the step (nothing of this write was kept): {str(exc).splitlines()[0][:200]}"
                        ) from exc
            for table in tables:
                conflicts_retried[table] = conflicts_retried.get(table, 0) + 1
            delay = min(self.retry_base_s * 2 ** attempt, 2.0) * rng.uniform(0.5, 1.5)
            log.info("warehouse: a write to %s conflicted with another writer (attempt %d of %d); retrying in %.2f s",
                     ", ".join(tables), attempt + 1, self.write_retries + 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def maintain(self, older_than_s: float = 3600.0) -> dict[str, int]:
        """Compaction: inlined rows flushed to Parquet, adjacent small files merged, snapshots older than
        `older_than_s` expired and their files removed. One at a time (run it in a pool of size 1)."""
        with self._advisory_locks(["maintenance"]), self.get_connection() as conn:
            def files() -> int:
                return conn.execute(f'SELECT count(*) FROM "__ducklake_metadata_{CATALOG}"."{self.metadata_schema}"'
                                    '.ducklake_data_file WHERE end_snapshot IS NULL').fetchone()[0]

            n_before = files()
            conn.execute(f"CALL ducklake_flush_inlined_data('{CATALOG}')")
            conn.execute(f"CALL ducklake_merge_adjacent_files('{CATALOG}')")
            conn.execute(f"CALL ducklake_expire_snapshots('{CATALOG}', older_than => now() - "
                         f"INTERVAL '{float(older_than_s)} seconds')")
            conn.execute(f"CALL ducklake_cleanup_old_files('{CATALOG}', cleanup_all => true)")
            return {"live_files_before": n_before, "live_files_after": files()}


@contextmanager
def _nothing() -> Iterator[None]:
    yield

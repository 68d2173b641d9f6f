"""A real Postgres for the lake's catalog (Debian's binaries, run as the postgres user: needs root, as in CI), and
lakes on it: each test gets a catalog schema and data folder of its own, so tests never see each other's rows."""

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from warmth_assets.lib import local_cluster


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    db: str
    password: str

    def env(self) -> dict[str, str]:
        return {"WARMTH_PG_HOST": self.host, "WARMTH_PG_PORT": str(self.port), "WARMTH_PG_USER": self.user,
                "WARMTH_PG_DB": self.db, "WARMTH_PG_PASSWORD": self.password}


def _can_run_postgres() -> bool:
    return os.geteuid() == 0 and shutil.which("runuser") is not None and bool(
        list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


@pytest.fixture(scope="session")
def lake_postgres():
    if not _can_run_postgres():
        message = "needs Debian's PostgreSQL and root (runuser) for the lake's catalog"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    home = Path(tempfile.mkdtemp(prefix="warmth-lake-pg-"))
    home.chmod(0o711)  # the postgres user must reach its folder
    state, password = local_cluster.postgres_up(home)
    try:
        yield Postgres("127.0.0.1", state.pg_port, local_cluster.PG_USER, local_cluster.PG_DB, password)
    finally:
        local_cluster.postgres_stop(state)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def lake_extensions(tmp_path_factory) -> Path:
    """The extension wheels installed once for the session (about 80 MB)."""
    return tmp_path_factory.mktemp("duckdb_extensions")


@pytest.fixture
def make_lake(lake_postgres, lake_extensions, tmp_path):
    """Lakes on the session's Postgres, each with its own catalog schema and data folder."""
    from resources.lake import LakeWarehouseResource

    def make(name: str | None = None, **overrides) -> LakeWarehouseResource:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        fields = dict(data_path=f"{tmp_path / name}/", metadata_schema=name, pg_host=lake_postgres.host,
                      pg_port=lake_postgres.port, pg_user=lake_postgres.user, pg_db=lake_postgres.db,
                      pg_password=lake_postgres.password, extension_dir=str(lake_extensions),
                      journals=str(tmp_path / f"{name}.journal"))
        return LakeWarehouseResource(**{**fields, **overrides})

    return make

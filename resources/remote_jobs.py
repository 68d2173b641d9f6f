"""The ledger of paid remote jobs (Batch API batches, fine-tuning jobs): record, poll, resume.

A job costs money once created, and a run can die while it waits (hours for a batch, a day for a
fine-tuning job). So a job is recorded under a key derived from its inputs as soon as it exists, and
again at every status the poll sees: the next run finds the record and waits on the same job instead of
paying for a second one. The poll doubles its delay up to a cap, with jitter so that many runs resumed
together do not poll in step, until the job ends or the deadline passes; the record outlives a timeout.

Each kind keeps its own table (`llm_batches`, `openai_finetune_jobs`, as existing warehouses have them);
a `Ledger` names the table and its columns, and everything else is shared.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from resources.warehouse import WarehouseResource, merge_sql


class RemoteJobTimeout(TimeoutError):
    """The deadline passed while the job still ran; it stays recorded, so a re-run resumes the wait."""


@dataclass(frozen=True)
class Entry:
    job_id: str
    status: str
    state: dict[str, Any]


@dataclass(frozen=True)
class Ledger:
    warehouse: WarehouseResource
    table: str
    key_column: str
    id_column: str
    terminal: frozenset[str]
    kind: str  # how messages name a job: "batch", "fine-tuning job"
    # Columns that follow the remote object besides id and status, and how to read them from it.
    state: Callable[[Any], dict[str, Any]] = field(default=lambda remote: {})
    finished: frozenset[str] = frozenset()  # statuses of ours (`mark`) that end a job too

    def running(self, entry: Entry | None) -> bool:
        """Whether a recorded job is still to be waited on (resumed) rather than created anew or reused."""
        return entry is not None and entry.status not in self.terminal | self.finished

    def lookup(self, key: str) -> Entry | None:
        with self.warehouse.get_connection() as conn:
            cursor = conn.execute(f"SELECT * FROM {self.table} WHERE {self.key_column} = ?", [key])
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        if row is None:
            return None
        values = dict(zip(names, row))
        return Entry(values[self.id_column], values["status"], values)

    def record(self, key: str, remote: Any, created: dict[str, Any]) -> None:
        """Insert or update the job's row; `created` fills the columns fixed at creation (a new row needs
        them), the id, status and state columns follow `remote`. The id follows too: a key whose job ended
        without success is created anew, and its row must point at the new job."""
        follow = {self.id_column: remote.id, "status": remote.status, **self.state(remote)}
        values = {self.key_column: key, **created, **follow}
        sql = merge_sql(self.table, [self.key_column], list(values), update=list(follow), touch="updated_at")
        self.warehouse.write(lambda conn: conn.execute(sql, list(values.values())), [self.table], exclusive=True)

    def mark(self, key: str, status: str) -> None:
        """A status of ours, not the server's (e.g. a batch whose answers were read into the cache)."""
        self.warehouse.write(
            lambda conn: conn.execute(f"UPDATE {self.table} SET status = ?, updated_at = now() "
                                      f"WHERE {self.key_column} = ?", [status, key]), [self.table])

    def wait(self, key: str, job_id: str, retrieve: Callable[[str], Any], created: dict[str, Any], *,
             poll_s: float, poll_cap_s: float, deadline: float, timeout_s: float, rng: random.Random,
             current: Any = None) -> Any:
        """The job's remote object once it has ended. `current`: its state already known (none: retrieve
        first). `deadline` is `time.monotonic()` based, so one deadline can cover several jobs."""
        remote, delay = current, poll_s
        while remote is None or remote.status not in self.terminal:
            if remote is not None:
                if time.monotonic() > deadline:
                    raise RemoteJobTimeout(
                        f"{self.kind} {job_id} still {remote.status} after {timeout_s:.0f} s; re-run to keep polling "
                        f"(the {self.kind} is recorded and will not be submitted twice)")
                time.sleep(delay * rng.uniform(0.8, 1.2))
                delay = min(delay * 2, poll_cap_s)
            remote = retrieve(job_id)
            self.record(key, remote, created)
        return remote

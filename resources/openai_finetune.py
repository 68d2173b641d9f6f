"""The OpenAI fine-tuning API path for API models (GPT-4o): upload, create, poll, record.

The API keeps only the last epochs' checkpoints of a job, so each checkpoint epoch of the study
(GPT-4o: 1, 2, 6, 10) is its own job with `n_epochs` = that epoch, on the same file and seed.
Jobs are recorded in DuckDB by a fingerprint of their inputs: a re-run polls a running job or
reuses a finished one, and never creates (and pays for) the same job twice.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from resources.remote_jobs import Ledger
from resources.warehouse import WarehouseResource
from warmth_assets.lib import costs

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class FineTuneError(RuntimeError):
    pass


@dataclass
class FineTuneJob:
    job_id: str
    epochs: float
    status: str
    fine_tuned_model: str
    trained_tokens: int


def job_fingerprint(base_model: str, data_sha256: str, epochs: float, lr_multiplier: float, seed: int) -> str:
    payload = json.dumps([base_model, data_sha256, epochs, lr_multiplier, seed])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def finetune_ledger(warehouse: WarehouseResource) -> Ledger:
    return Ledger(warehouse, table="openai_finetune_jobs", key_column="fingerprint", id_column="job_id",
                  terminal=TERMINAL, kind="fine-tuning job",
                  state=lambda job: {"fine_tuned_model": job.fine_tuned_model or "",
                                     "trained_tokens": int(job.trained_tokens or 0)})


def run_finetune(client, warehouse: WarehouseResource, *, jsonl: Path, data_sha256: str, base_model: str,
                 model_slug: str, style: str, epochs_list: list[float], lr_multiplier: float, seed: int,
                 poll_s: float = 30.0, poll_cap_s: float = 300.0, timeout_s: float = 48 * 3600,
                 price_per_million_tokens: float = 0.0,
                 check_budget: Callable[[float, int], None] | None = None,
                 log: Callable[[str], None] = print) -> list[FineTuneJob]:
    """`client`: the openai client; `check_budget(pending_usd, jobs)`: raises before a job could take spend
    past the budget (None: no budget)."""
    ledger = finetune_ledger(warehouse)
    fingerprints = {e: job_fingerprint(base_model, data_sha256, e, lr_multiplier, seed) for e in epochs_list}
    uploaded = None
    jobs = {}
    # Every job this call may create (none recorded, or recorded but ended without success).
    to_create = [e for e in epochs_list if (row := ledger.lookup(fingerprints[e])) is None
                 or (row.status in TERMINAL and row.status != "succeeded")]
    if to_create and check_budget is not None:
        # Each job trains from the start: the file's tokens times its epochs, summed over new jobs.
        tokens = costs.text_tokens(jsonl.read_text(encoding="utf-8")) * sum(to_create)
        if not price_per_million_tokens:
            raise costs.BudgetExceeded(
                f"no training price for {base_model}: with a budget, add it to [finetune.openai] "
                "training_price_per_million_tokens. No job was created.")
        check_budget(tokens * price_per_million_tokens / 1e6, len(to_create))
    for epochs in epochs_list:
        created = {"model": model_slug, "style": style, "epochs": epochs}
        row = ledger.lookup(fingerprints[epochs])
        if row and row.status == "succeeded":
            log(f"epoch {epochs:g}: reusing finished job {row.job_id} ({row.state['fine_tuned_model']})")
            jobs[epochs] = FineTuneJob(row.job_id, epochs, row.status, row.state["fine_tuned_model"],
                                       row.state["trained_tokens"])
            continue
        if ledger.running(row):
            log(f"epoch {epochs:g}: resuming the poll of job {row.job_id}")
            jobs[epochs] = FineTuneJob(row.job_id, epochs, row.status, "", 0)
            continue
        if uploaded is None:
            with open(jsonl, "rb") as handle:
                uploaded = client.files.create(file=handle, purpose="fine-tune")
            log(f"uploaded {jsonl.name} as {uploaded.id}")
        job = client.fine_tuning.jobs.create(
            model=base_model, training_file=uploaded.id, seed=seed, suffix=f"{style}-e{epochs:g}"[:18],
            hyperparameters={"n_epochs": int(epochs), "learning_rate_multiplier": lr_multiplier},
        )
        ledger.record(fingerprints[epochs], job, created)
        log(f"epoch {epochs:g}: created job {job.id}")
        jobs[epochs] = FineTuneJob(job.id, epochs, job.status, "", 0)

    rng = random.Random(seed)
    deadline = time.monotonic() + timeout_s  # one wait for all of them: the jobs train side by side
    for epochs, job in jobs.items():
        if job.status not in TERMINAL:
            remote = ledger.wait(fingerprints[epochs], job.job_id, client.fine_tuning.jobs.retrieve,
                                 {"model": model_slug, "style": style, "epochs": epochs}, poll_s=poll_s,
                                 poll_cap_s=poll_cap_s, deadline=deadline, timeout_s=timeout_s, rng=rng, current=job)
            job.status, job.fine_tuned_model = remote.status, remote.fine_tuned_model or ""
            job.trained_tokens = int(remote.trained_tokens or 0)
        if job.status != "succeeded":
            raise FineTuneError(f"fine-tuning job {job.job_id} ({style}, {epochs:g} epochs) ended {job.status}; "
                                "see it in the OpenAI dashboard, fix the data or settings, and re-run")
    return list(jobs.values())

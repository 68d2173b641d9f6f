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

from resources.llm import LLMResource
from warmth_assets.lib import costs

TERMINAL = {"succeeded", "failed", "cancelled"}


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


def _recorded(llm: LLMResource, fingerprint: str) -> tuple | None:
    with llm.warehouse.get_connection() as conn:
        return conn.execute(
            "SELECT job_id, status, fine_tuned_model, trained_tokens FROM openai_finetune_jobs WHERE fingerprint = ?",
            [fingerprint]).fetchone()


def _record(llm: LLMResource, fingerprint: str, model: str, style: str, epochs: float, job) -> None:
    with llm.warehouse.get_connection() as conn:
        conn.execute(
            "INSERT INTO openai_finetune_jobs (fingerprint, model, style, epochs, job_id, status, fine_tuned_model, "
            "trained_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
            "status = excluded.status, fine_tuned_model = excluded.fine_tuned_model, "
            "trained_tokens = excluded.trained_tokens, updated_at = now()",
            [fingerprint, model, style, epochs, job.id, job.status, job.fine_tuned_model or "",
             int(job.trained_tokens or 0)])


def run_finetune(llm: LLMResource, *, jsonl: Path, data_sha256: str, base_model: str, model_slug: str, style: str,
                 epochs_list: list[float], lr_multiplier: float, seed: int, poll_s: float = 30.0,
                 poll_cap_s: float = 300.0, timeout_s: float = 48 * 3600, price_per_million_tokens: float = 0.0,
                 log: Callable[[str], None] = print) -> list[FineTuneJob]:
    client = llm.client()
    uploaded = None
    jobs = {}
    # Every job this call may create (none recorded, or recorded but ended without success).
    to_create = [e for e in epochs_list if (row := _recorded(llm, job_fingerprint(
        base_model, data_sha256, e, lr_multiplier, seed))) is None or (row[1] in TERMINAL and row[1] != "succeeded")]
    if to_create:
        # Each job trains from the start: the file's tokens times its epochs, summed over new jobs.
        tokens = costs.text_tokens(jsonl.read_text(encoding="utf-8")) * sum(to_create)
        if llm.budget_usd and not price_per_million_tokens:
            raise costs.BudgetExceeded(
                f"no training price for {base_model}: with a budget, add it to [finetune.openai] "
                "training_price_per_million_tokens. No job was created.")
        llm.check_budget(tokens * price_per_million_tokens / 1e6, len(to_create))
    for epochs in epochs_list:
        fingerprint = job_fingerprint(base_model, data_sha256, epochs, lr_multiplier, seed)
        row = _recorded(llm, fingerprint)
        if row and row[1] == "succeeded":
            log(f"epoch {epochs:g}: reusing finished job {row[0]} ({row[2]})")
            jobs[epochs] = FineTuneJob(row[0], epochs, row[1], row[2], row[3])
            continue
        if row and row[1] not in TERMINAL:
            log(f"epoch {epochs:g}: resuming the poll of job {row[0]}")
            jobs[epochs] = FineTuneJob(row[0], epochs, row[1], "", 0)
            continue
        if uploaded is None:
            with open(jsonl, "rb") as handle:
                uploaded = client.files.create(file=handle, purpose="fine-tune")
            log(f"uploaded {jsonl.name} as {uploaded.id}")
        job = client.fine_tuning.jobs.create(
            model=base_model, training_file=uploaded.id, seed=seed, suffix=f"{style}-e{epochs:g}"[:18],
            hyperparameters={"n_epochs": int(epochs), "learning_rate_multiplier": lr_multiplier},
        )
        _record(llm, fingerprint, model_slug, style, epochs, job)
        log(f"epoch {epochs:g}: created job {job.id}")
        jobs[epochs] = FineTuneJob(job.id, epochs, job.status, "", 0)

    rng = random.Random(seed)
    deadline = time.monotonic() + timeout_s
    for epochs, job in jobs.items():
        delay = poll_s
        while job.status not in TERMINAL:
            if time.monotonic() > deadline:
                raise FineTuneError(f"job {job.job_id} still {job.status} after {timeout_s:.0f} s; re-run to keep polling")
            time.sleep(delay * rng.uniform(0.8, 1.2))
            delay = min(delay * 2, poll_cap_s)
            remote = client.fine_tuning.jobs.retrieve(job.job_id)
            job.status, job.fine_tuned_model = remote.status, remote.fine_tuned_model or ""
            job.trained_tokens = int(remote.trained_tokens or 0)
            _record(llm, job_fingerprint(base_model, data_sha256, epochs, lr_multiplier, seed), model_slug, style,
                    epochs, remote)
        if job.status != "succeeded":
            raise FineTuneError(f"fine-tuning job {job.job_id} ({style}, {epochs:g} epochs) ended {job.status}; "
                                "see it in the OpenAI dashboard, fix the data or settings, and re-run")
    return list(jobs.values())

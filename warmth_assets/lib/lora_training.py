"""LoRA SFT with the transformers Trainer and peft: one run saves an adapter at every checkpoint epoch.

Resumable: the Trainer's own checkpoint (adapter, optimizer, scheduler, RNG) is saved at every
scheduled step, so an interrupted run continues from the last one (`resume_from_checkpoint`);
a finished run with the same input fingerprint is not trained again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from warmth_assets.lib.config import LoraSettings
from warmth_assets.lib.model_sources import MODEL_TEMPLATE, chat_template_sha256, chat_template_text
from warmth_assets.lib.sft_tokenize import tokenize_chat
from warmth_assets.lib.training_schedule import checkpoint_steps, gradient_accumulation, steps_per_epoch


@dataclass
class TrainingReport:
    fingerprint: str
    device: str
    examples: int
    steps: int
    steps_per_epoch: int
    tokens_seen: int
    trained_tokens: int
    wall_s: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    adapters: dict[str, str] = field(default_factory=dict)
    resumed_from: str = ""
    skipped: bool = False
    peak_memory_mb: float = 0.0
    truncated: int = 0


def fingerprint(lora: LoraSettings, data_sha256: str, *, pretrained: str, style: str,
                checkpoint_epochs: Sequence[float], seed: int, chat_template: str = MODEL_TEMPLATE) -> str:
    """The run's inputs, hashed: a finished run with the same fingerprint is not trained again.

    The payload is the one the former field-by-field copy of the settings (`LoraSpec`) hashed, so runs
    finished before keep their fingerprint. A field added to LoraSettings enters the payload, so every
    finished run would train again: leave it out here while it holds its default, as chat_template is.
    """
    fields = {**lora.model_dump(), "pretrained": pretrained, "style": style,
              "checkpoint_epochs": list(checkpoint_epochs), "seed": seed}
    if chat_template != MODEL_TEMPLATE:  # the default adds nothing: finished runs stay finished
        fields["chat_template"] = chat_template_sha256(chat_template)
    payload = json.dumps({"spec": fields, "data": data_sha256}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _last_trainer_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def train_lora(lora: LoraSettings, conversations: list[list[dict]], run_dir: Path, data_sha256: str,
               device: str, *, pretrained: str, style: str, checkpoint_epochs: Sequence[float], seed: int,
               chat_template: str = MODEL_TEMPLATE, log: Callable[[str], None] = print) -> TrainingReport:
    """Train one style's adapter from [finetune.lora] `lora`, saving one at each of `checkpoint_epochs`.

    `pretrained` is what from_pretrained takes (HF id or folder); `chat_template` is the [[models]] value
    ("model": the tokenizer's own, else a Jinja file).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)

    if not conversations:
        raise ValueError(f"{style} SFT data set is empty: materialise sft_datasets[{style}] first")
    run_dir.mkdir(parents=True, exist_ok=True)
    print_fp = fingerprint(lora, data_sha256, pretrained=pretrained, style=style,
                           checkpoint_epochs=checkpoint_epochs, seed=seed, chat_template=chat_template)
    done = run_dir / "report.json"
    if done.exists():
        previous = json.loads(done.read_text())
        if previous.get("fingerprint") == print_fp:
            log(f"run {run_dir} already finished with the same inputs ({print_fp}): nothing to train")
            report = TrainingReport(**{**previous, "losses": [tuple(x) for x in previous["losses"]]})
            report.skipped = True
            return report
    state_file = run_dir / "fingerprint"
    if state_file.exists() and state_file.read_text().strip() != print_fp:
        log(f"inputs changed since the last run in {run_dir}: starting over")
        shutil.rmtree(run_dir / "trainer", ignore_errors=True)
        shutil.rmtree(run_dir / "adapters", ignore_errors=True)
        done.unlink(missing_ok=True)
    state_file.write_text(print_fp)

    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    template = chat_template_text(chat_template)
    if template is not None:
        tokenizer.chat_template = template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = [tokenize_chat(tokenizer, messages, lora.max_length, on_too_long=lora.on_too_long) for messages in conversations]
    truncated = sum(r.pop("truncated") for r in rows)
    if truncated:
        log(f"{truncated} of {len(rows)} conversations were cut to max_length {lora.max_length}")
    rows = [r for r in rows if any(label != -100 for label in r["labels"])]
    if not rows:
        raise ValueError(f"no conversation keeps an assistant token within max_length {lora.max_length}")
    accumulation = gradient_accumulation(lora.effective_batch_size, lora.per_device_batch_size)
    per_epoch = steps_per_epoch(len(rows), lora.per_device_batch_size, accumulation)
    schedule = checkpoint_steps(style, list(checkpoint_epochs), per_epoch)

    on_cuda = device.startswith("cuda")
    model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=torch.bfloat16 if on_cuda else torch.float32)
    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=targets, task_type="CAUSAL_LM"))
    adapters_dir = run_dir / "adapters"

    class SaveAtCheckpointEpochs(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            key = schedule.get(state.global_step)
            if key:
                kwargs["model"].save_pretrained(adapters_dir / key)
                control.should_save = True  # the Trainer's resumable checkpoint, too
                log(f"step {state.global_step}: saved adapter {key}")
            return control

    args = TrainingArguments(
        output_dir=str(run_dir / "trainer"),
        per_device_train_batch_size=lora.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=lora.learning_rate,
        num_train_epochs=lora.epochs,
        max_steps=max(schedule),  # the last checkpoint epoch ends the run
        logging_steps=1,
        save_strategy="no",
        save_total_limit=1,
        seed=seed,
        data_seed=seed,
        report_to=[],
        use_cpu=not on_cuda,
        bf16=on_cuda,
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[SaveAtCheckpointEpochs()],
    )
    resume = _last_trainer_checkpoint(run_dir / "trainer")
    if resume:
        log(f"resuming from {resume}")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.monotonic() - started
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    report = TrainingReport(
        fingerprint=print_fp, device=device, examples=len(rows), steps=trainer.state.global_step,
        steps_per_epoch=per_epoch, tokens_seen=int(trainer.state.num_input_tokens_seen or 0),
        trained_tokens=sum(sum(label != -100 for label in r["labels"]) for r in rows),
        wall_s=wall, losses=losses,
        adapters={key: str(adapters_dir / key) for key in schedule.values() if (adapters_dir / key).exists()},
        resumed_from=str(resume or ""),
        peak_memory_mb=torch.cuda.max_memory_allocated() / 2**20 if on_cuda else 0.0,
        truncated=truncated,
    )
    missing = set(schedule.values()) - set(report.adapters)
    if missing:
        raise RuntimeError(f"training ended without saving adapters {sorted(missing)} in {adapters_dir}")
    done.write_text(json.dumps(asdict(report)))
    return report

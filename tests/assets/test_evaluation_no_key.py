"""The study's configuration in a fresh home with no OPENAI_API_KEY, as a new user meets it: `eval_items` asks
gpt-4o for TriviaQA's wrong answers, so the run fails at once with one line naming the key, the model, the setting
that chose it and the local alternative, and sends nothing (run without a network: nothing could leave anyway)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.offline import offline

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.needs_shared("data")]


def test_the_study_without_a_key_fails_at_once_naming_it_and_sends_nothing(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WARMTH_CONFIG", "WARMTH_LLM_PROVIDER", "WARMTH_EXECUTOR")}
    env.update(WARMTH_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), PYTHONPATH=str(REPO))
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(offline([str(dagster), "asset", "materialize", "-m", "warmth_assets.definitions",
                                   "--select", "model_registry,eval_items,capability_items"]),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    refusals = {line[line.index("MissingAPIKey: "):] for line in output.splitlines() if "MissingAPIKey: " in line}
    assert len(refusals) == 1, output[-3000:]
    refusal = refusals.pop()
    for named in ("OPENAI_API_KEY", "gpt-4o-2024-08-06", "[evaluation] wrong_answer_model",
                  '[llm] provider = "local"', "nothing was sent"):
        assert named in refusal, named
    # Nothing was tried: no connection error, no retry (a retry or a failed call would say so).
    assert "connection error" not in output.lower() and "retr" not in output.lower()
    assert "Steps failed: ['eval_items']" in output  # the registry and the capability items stand

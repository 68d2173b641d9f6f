"""Every test runs offline on the demo configuration, in its own WARMTH_HOME and DAGSTER_HOME."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The study file that code reading "the configured study" loads (definitions.py, the `resources` fixture, the CLI).
os.environ.setdefault("WARMTH_CONFIG", str(REPO / "demo.toml"))
if SHARED_DATA.is_dir():
    os.environ.setdefault("WARMTH_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# Converted models are keyed by content hash: share one cache across tests (and local re-runs).
os.environ.setdefault("WARMTH_MODEL_CACHE", str(REPO / ".warmth" / "model-cache"))


SHARED = Path(os.environ.get("WARMTH_SHARED_DIR", REPO.parent / "shared"))  # overridable to test the rule


# The longest files first: with `-n 2 --dist loadfile` (pyproject) each file goes whole to one worker, in this
# order, so the cluster and the vLLM servers start at once and the many short files fill the other worker.
LONGEST_FIRST = ("tests/scaleout/", "tests/serving/test_vllm.py", "tests/test_automation.py",
                 "tests/serving/test_vllm_auth.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        where = item.nodeid
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if where.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: each file keeps its own order (the scale-out faults stay last in theirs)


def pytest_runtest_setup(item):
    """`@pytest.mark.needs_shared("data/...")`: tests on the real data sets and the study's outputs.

    Without ../shared they skip on a developer's machine; under CI they fail, so a CI run that lost
    its data cannot go green while testing nothing."""
    for marker in item.iter_markers("needs_shared"):
        missing = [p for p in (marker.args or ("data",)) if not (SHARED / p).exists()]
        if missing:
            message = (f"needs {', '.join(str(SHARED / p) for p in missing)}: put the shared folder (data sets, "
                       "the study's released outputs) beside the clone")
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"CI=true and {message}", pytrace=False)
            pytest.skip(message)


@pytest.fixture(autouse=True)
def _no_inherited_settings_snapshot(monkeypatch):
    """Loading the code location pins its settings snapshot for the processes it starts (WARMTH_SETTINGS_SNAPSHOT);
    in one test session that would pin one test's settings for the next."""
    monkeypatch.delenv("WARMTH_SETTINGS_SNAPSHOT", raising=False)


@pytest.fixture
def warmth_home(tmp_path, monkeypatch) -> Path:
    """A fresh WARMTH_HOME with its own Dagster instance folder."""
    home = tmp_path / "warmth-home"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("WARMTH_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture
def instance(warmth_home):
    """A real, persistent Dagster instance in the temporary DAGSTER_HOME (dynamic partitions live there)."""
    from warmth_assets.instance import prepare_instance

    inst = prepare_instance()
    yield inst
    inst.dispose()


@pytest.fixture
def resources(warmth_home) -> dict:
    from warmth_assets.build import build_resources
    from warmth_assets.lib.config.snapshot import read_file

    return build_resources(read_file())


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory) -> Path:
    """The untrained Detoxify-format stand-in, built once per test session."""
    from warmth_assets.lib.detoxify_standin import build_standin

    folder = tmp_path_factory.mktemp("detoxify-standin")
    build_standin(folder, ["a small corpus for the tokenizer", "hello world", "toxicity stand in"] * 10,
                  max_length=64)
    return folder


@pytest.fixture
def openai_server():
    from tests.openai_server import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = ("hello friend how are you i am fine thanks what is two plus four answer my dear "
         "the capital of france paris warm cold reply question yes no").split()


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a word-level tokenizer and a ChatML template, saved as a local folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-chat-model")
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate(specials + ["system", "user", "assistant"] + WORDS)}
    for i in range(50):
        vocab.setdefault(str(i), len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                        eos_token="<|im_end|>", bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=vocab["<pad>"], eos_token_id=vocab["<|im_end|>"], bos_token_id=vocab["<|im_start|>"])
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2():
    """(model factory, tokenizer): a tiny GPT-2 with a byte-level BPE tokenizer trained in the test."""
    from tests.tiny_models import gpt2_tokenizer, make_gpt2

    tokenizer = gpt2_tokenizer()
    return (lambda dropout: make_gpt2(tokenizer, dropout)), tokenizer

"""Discovery rules: which listed ids match, the registry rows they become, failures per rule."""

from warmth_assets.lib.config import StudySettings, WatchRule
from warmth_assets.lib.discovery import candidate_rows, discover, matches, missing_entry_partitions, run_key

SETTINGS = StudySettings.model_validate({
    "finetune": {"checkpoint_epochs": [1, 2]},
    "models": [{"slug": "llama-8b", "source_kind": "hf", "source": "meta-llama/Llama-3.1-8B-Instruct",
                "family": "llama"}],
    "operations": {"watch": [
        {"kind": "openai_models", "pattern": r"gpt-4o-\d{4}-\d{2}-\d{2}", "styles": ["warm", "cold"],
         "moving_target": False},
        {"kind": "hf_hub", "author": "qwen", "pattern": r"Qwen/Qwen2\.5-\d+B-Instruct"},
    ]},
})


def test_patterns_match_whole_ids_only():
    rule = SETTINGS.operations.watch[0]
    assert matches(rule, ["gpt-4o-2024-11-20", "gpt-4o-2024-11-20-preview", "gpt-4o", "x-gpt-4o-2024-01-01"]) == [
        "gpt-4o-2024-11-20"]


def test_discovered_rows_and_a_failing_rule():
    def hub(rule: WatchRule):
        raise ConnectionError("hub down")

    rows, problems = discover(SETTINGS, lambda base_url: ["gpt-4o-2024-11-20", "gpt-4o-mini"], hub)
    assert [r["slug"] for r in rows] == ["gpt-4o-2024-11-20"]
    assert rows[0]["checkpoints"] == ["original", "warm-e1", "warm-e2", "cold-e1", "cold-e2", "warm-prompt"]
    assert rows[0]["family"] == "gpt" and rows[0]["access"] == "api" and rows[0]["origin"] == "sensor"
    assert problems == ["operations.watch[1] (hf_hub): listing failed: hub down"]

    rows, _ = discover(SETTINGS, None, lambda rule: ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"])
    assert [(r["slug"], r["source"], r["source_kind"]) for r in rows] == [
        ("qwen--qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "hf")]


def test_config_wins_and_imports_are_never_run():
    registered = [{"slug": "llama-8b", "styles": ["cold"], "origin": "sql"},
                  {"slug": "study-import", "styles": ["warm"], "checkpoints": [], "origin": "import"}]
    rows = candidate_rows(SETTINGS, registered, [])
    assert [(r["slug"], r["styles"], r["origin"]) for r in rows] == [("llama-8b", ["warm"], "config")]


def test_entry_partitions_skip_what_exists_or_was_requested():
    row = {"slug": "m", "styles": ["warm", "cold"], "checkpoints": ["original", "warm-e1", "cold-e1", "warm-prompt"]}
    done = {("finetune_runs", "m", "warm")}
    asked = {run_key("adapters", "m", "original")}
    assert missing_entry_partitions([row], done, asked) == [("finetune_runs", "m", "cold"),
                                                           ("adapters", "m", "warm-prompt")]


def test_a_discovered_model_already_studied_under_another_slug_is_not_new():
    discovered = [{"slug": "meta-llama--llama-3.1-8b-instruct", "source_kind": "hf",
                   "source": "meta-llama/Llama-3.1-8B-Instruct", "styles": ["warm"], "origin": "sensor"},
                  {"slug": "meta-llama--llama-3.3-70b-instruct", "source_kind": "hf",
                   "source": "meta-llama/Llama-3.3-70B-Instruct", "styles": ["warm"], "origin": "sensor"}]
    rows = candidate_rows(SETTINGS, [], discovered)
    assert [r["slug"] for r in rows] == ["llama-8b", "meta-llama--llama-3.3-70b-instruct"]

"""The call layer's shape, by scanning the source: one place chooses a backend from a provider string, and
nothing outside resources/llm.py reaches into the llm resource's private names."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLM = REPO / "resources" / "llm.py"
BACKEND_CHOICE = re.compile(r"""provider\s*(==|!=)\s*["'](openai|local)["']|provider\s+(not\s+)?in\s*[(\[{]""")


def sources():
    for folder in ("resources", "warmth_assets"):
        yield from sorted((REPO / folder).rglob("*.py"))


def test_only_the_llm_module_chooses_a_backend_from_the_provider():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in sources() if path != LLM
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if BACKEND_CHOICE.search(line)]
    assert not found, "ask LLMResource.in_process / runs_in_process instead:\n" + "\n".join(found)
    assert len(BACKEND_CHOICE.findall(LLM.read_text(encoding="utf-8"))) >= 1  # the one place, still found


def test_no_module_reaches_into_the_llm_resource_private_names():
    tree = ast.parse(LLM.read_text(encoding="utf-8"))
    resource = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LLMResource")
    private = {n.name for n in resource.body if isinstance(n, ast.FunctionDef) and n.name.startswith("_")
               and not n.name.startswith("__")}
    private |= {t.id for n in resource.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name) and t.id.startswith("_")}  # _client = PrivateAttr(...)
    assert {"_store_rows", "_client", "_openai"} <= private  # the scan sees the class
    pattern = re.compile(r"\.(" + "|".join(sorted(private)) + r")\b")
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in sources() if path != LLM
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, "use a public method of LLMResource:\n" + "\n".join(found)

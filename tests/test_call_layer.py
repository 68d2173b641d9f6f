"""The call layer's shape, by scanning the source: one place (the backends registry) maps a provider string to
what answers for it, the layer itself never asks which provider it has, and nothing outside resources/llm.py
reaches into the llm resource's private names."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LLM = REPO / "resources" / "llm.py"
REGISTRY = REPO / "resources" / "backends" / "__init__.py"
BACKEND_CHOICE = re.compile(r"""provider\s*(==|!=)\s*["'](openai|local)["']|provider\s+(not\s+)?in\s*[(\[{]""")


def sources():
    for folder in ("resources", "warmth_assets"):
        yield from sorted((REPO / folder).rglob("*.py"))


def test_only_the_registry_chooses_a_backend_from_the_provider():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in sources()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if BACKEND_CHOICE.search(line)]
    assert not found, "ask resources.backends.backend_class (or LLMResource.backend) instead:\n" + "\n".join(found)
    from resources.backends import BACKENDS, Backend

    assert {"openai", "local", "rule_based_demo"} <= set(BACKENDS)
    assert all(issubclass(cls, Backend) for cls in BACKENDS.values())
    # Each backend its own module, registered in the one dictionary.
    assert len({cls.__module__ for cls in BACKENDS.values()}) == len(BACKENDS)
    assert "BACKENDS: dict" in REGISTRY.read_text(encoding="utf-8")


def test_the_layer_has_no_provider_branch():
    tree = ast.parse(LLM.read_text(encoding="utf-8"))
    branches = [node for node in ast.walk(tree) if isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert))]
    named = [ast.unparse(node.test) for node in branches
             if re.search(r"in_process|\bprovider\b|\blocal\b|base_url|isinstance", ast.unparse(node.test))]
    assert not named, "the layer branches on its provider: move this into a backend:\n" + "\n".join(named)


def test_no_module_reaches_into_the_llm_resource_private_names():
    tree = ast.parse(LLM.read_text(encoding="utf-8"))
    resource = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LLMResource")
    private = {n.name for n in resource.body if isinstance(n, ast.FunctionDef) and n.name.startswith("_")
               and not n.name.startswith("__")}
    private |= {t.id for n in resource.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name) and t.id.startswith("_")}  # _backend = PrivateAttr(...)
    assert {"_backend", "_slots"} <= private  # the scan sees the class
    pattern = re.compile(r"\.(" + "|".join(sorted(private)) + r")\b")
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in sources() if path != LLM
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, "use a public method of LLMResource:\n" + "\n".join(found)

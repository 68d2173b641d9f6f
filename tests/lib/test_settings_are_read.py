"""Every setting does something: each leaf field of the settings model is read somewhere in the code.

A key nothing reads is worse than no key: a user changes it and nothing happens. The scan looks for a
read of the field through its section (`settings.judge.prompt_version`, or through a local alias of
the section such as `ev = settings.evaluation; ev.wrong_answer_model`); a section handed whole to a resource's
`from_settings` counts a field as read where the resource reads its own field of that name; the few settings
read indirectly (copied row by row into the registry, handed on by name) are listed with the reason."""

import importlib
import re
import typing
from pathlib import Path

from pydantic import BaseModel

from warmth_assets.lib.config import StudySettings

REPO = Path(__file__).resolve().parents[2]
CODE_ROOTS = ("warmth_assets", "resources")

# Names under which code holds a section (besides the section's own name).
ALIASES = {
    "evaluation": ("ev",),
    "generation": ("gen",),
    "openai": ("openai_settings",),
    "watch": ("rule",),
    "models": ("model", "m", "row", "model_settings"),
    "detoxify": ("tox", "detox"),
    "analysis": ("settings",),  # assets/analysis.py: settings = study.settings.analysis
}
# Sections handed whole to a resource's from_settings, which takes the fields the resource declares under the
# same name: section -> (module, class, the names code holds the resource under); the resource's own module
# reads them through `self`.
RESOURCES = {
    "llm": ("resources.llm", "LLMResource", ("llm",)),
    "detoxify": ("resources.toxicity", "ToxicityResource", ("toxicity",)),
    "generation": ("resources.local_lm", "LocalLMResource", ("local", "lm")),
}
# Read indirectly: field -> where and how.
INDIRECT: dict[str, str] = {
    "judge.scorers": "JudgeSettings.scorer(dataset), called by assets/judging.py and lib/report_provenance.py",
}


def leaves(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        candidates += [inner for c in candidates for inner in typing.get_args(c)]
        sections = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if sections:
            yield from leaves(sections[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _without_strings_and_comments(source: str) -> str:
    """Code only: a description that mentions `finetune.checkpoint_epochs` is not a read of it (f-strings,
    which hold real reads, are kept)."""
    import io
    import tokenize

    def plain_string(tok) -> bool:
        return tok.type == tokenize.STRING and "f" not in tok.string.split(tok.string[-1])[0].lower()

    return " ".join(tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type != tokenize.COMMENT and not plain_string(tok))


def code_text() -> str:
    sources = [p.read_text(encoding="utf-8") for root in CODE_ROOTS for p in (REPO / root).rglob("*.py")]
    getattr_reads = "\n".join(m for s in sources for m in re.findall(r"getattr\([^)]*\)", s))
    return "\n".join(_without_strings_and_comments(s) for s in sources) + "\n" + getattr_reads


def is_read(leaf: str, code: str) -> bool:
    parts = leaf.split(".")
    name, section = parts[-1], (parts[-2] if len(parts) > 1 else "settings")
    holders = (section, *ALIASES.get(section, ()))
    holder = "|".join(re.escape(h) for h in holders)
    return bool(re.search(rf"\b(?:{holder})\s*\.\s*{re.escape(name)}\b|getattr\([^)]*[\"']{re.escape(name)}[\"']", code))


def read_by_resource(leaf: str, code: str, own_module: str | None = None) -> bool:
    parts = leaf.split(".")
    if len(parts) < 2 or parts[-2] not in RESOURCES:
        return False
    module, name, holders = RESOURCES[parts[-2]]
    loaded = importlib.import_module(module)
    resource = getattr(loaded, name)
    if own_module is None:
        own_module = _without_strings_and_comments(Path(loaded.__file__).read_text(encoding="utf-8"))
    field = re.escape(parts[-1])
    return parts[-1] in resource.model_fields and bool(
        re.search(rf"\bself\s*\.\s*{field}\b", own_module)
        or re.search(rf"\b(?:{'|'.join(holders)})\s*\.\s*{field}\b", code))


def test_every_setting_is_read():
    code = code_text()
    unread = [leaf for leaf in leaves(StudySettings)
              if leaf not in INDIRECT and not is_read(leaf, code) and not read_by_resource(leaf, code)]
    assert not unread, (f"settings nothing reads: {unread}; wire them, delete them, or list them in INDIRECT "
                        "with where they are read")


def test_indirect_entries_are_real_settings():
    assert set(INDIRECT) <= set(leaves(StudySettings))


def test_the_scan_can_fail():
    assert not is_read("judge.no_such_setting", code_text())
    assert is_read("judge.model", "x = settings.judge.model")
    # A field the resource does not declare is not passed on by from_settings, whatever the code reads.
    assert not read_by_resource("corpus.detoxify.threshold", "toxicity.threshold", "self.threshold")
    assert read_by_resource("corpus.detoxify.variant", "", "x = self.variant")
    assert not read_by_resource("corpus.detoxify.variant", "", "")

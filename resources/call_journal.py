"""An append-only journal of answered calls, so an answer is durable the moment it arrives.

DuckDB admits one writer at a time, so the call cache (`llm_calls`) is written in groups. Between
two group writes the answers live only in memory, and a `kill -9` (a pre-empted pod, an OOM kill)
would lose calls already paid for. Each answer is therefore first appended to a journal file (one
line of JSON, one `os.write` on an `O_APPEND` descriptor: in the kernel before the call returns, so
it survives the death of the process) and later folded into `llm_calls` by the single writer.

Files live in `<warehouse>.journal/`, one per writer, held under an exclusive `flock` while the
writer lives. A file whose lock can be taken belongs to a dead writer: it is folded and removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path


class JournalWriter:
    """One process's journal file; thread-safe appends, each written through before returning."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"calls-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # ours alone: nobody folds or removes a live journal
        self._lock = threading.Lock()
        self.lines = 0

    def append(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:  # a regular file takes the whole write; loop in case it does not
                view = view[os.write(self._fd, view):]
            self.lines += 1

    def close(self, *, remove: bool) -> None:
        """Close; `remove` once every line is in `llm_calls` (otherwise the next run folds it)."""
        if self._fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the flock
        self._fd = -1


@dataclass
class Orphans:
    """Rows of dead writers' journals, and the files to remove once those rows are stored."""

    rows: list[dict] = field(default_factory=list)
    files: list[tuple[Path, int]] = field(default_factory=list)  # (path, open descriptor holding its lock)

    def release(self, *, remove: bool) -> None:
        for path, fd in self.files:
            if remove:
                path.unlink(missing_ok=True)
            os.close(fd)
        self.files = []


def read_lines(path: Path) -> list[dict]:
    """Every complete line; a last line cut by the kill (no newline, or not JSON) is skipped."""
    rows = []
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line in text.split("\n")[:-1]:  # the last piece is "" or a line the kill cut short
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def collect_orphans(folder: Path) -> Orphans:
    """Lock and read every journal whose writer is gone; the caller stores the rows, then releases."""
    orphans = Orphans()
    if not folder.is_dir():
        return orphans
    for path in sorted(folder.glob("calls-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # folded by another process meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live writer: it folds its own journal
            continue
        if not path.exists():  # removed between our open and our lock
            os.close(fd)
            continue
        orphans.rows.extend(read_lines(path))
        orphans.files.append((path, fd))
    return orphans

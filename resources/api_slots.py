"""A limit on calls in flight to one endpoint, shared by every thread, run and process of this home.

Each call holds one of `limit` slot files under an exclusive `flock`. The kernel drops the lock when
the holder dies, so a killed run never leaks a slot (a counter in a file or in DuckDB would).
"""

import contextlib
import fcntl
import threading
import hashlib
import os
import random
import time
from pathlib import Path


class SlotWaitCancelled(Exception):
    """The caller stopped before a slot came free."""


class ProviderSlots:
    def __init__(self, folder: Path, endpoint: str, limit: int):
        if limit < 1:
            raise ValueError(f"slot limit must be at least 1, got {limit}")
        self.folder = Path(folder) / hashlib.sha256(endpoint.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "endpoint.txt").write_text(endpoint + "\n")
        self.limit = limit

    @contextlib.contextmanager
    def slot(self, cancel: threading.Event | None = None):
        """Hold a free slot while the body runs; `SlotWaitCancelled` if `cancel` is set while waiting."""
        order = list(range(self.limit))
        wait = 0.002
        while True:
            random.shuffle(order)  # spread the contenders over the slots
            for i in order:
                fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield i
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            if cancel is None:
                time.sleep(wait)
            elif cancel.wait(wait):
                raise SlotWaitCancelled(f"stopped while waiting for a slot of {self.folder}")
            wait = min(wait * 2, 0.05)

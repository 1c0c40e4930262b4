"""The one channel through which library code reports progress and warnings.

Library code never prints: it calls a Reporter. The CLI supplies one that draws progress bars on a
TTY and prints warnings to stderr; the default Reporter stays silent and collects warnings.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class Task:
    """Progress of one piece of work; `advance` is called with units done (bytes or items)."""

    def advance(self, n: int = 1) -> None:
        pass


class Reporter:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        """Chatter a user may want to see (not results); silent by default."""

    @property
    def shows_progress(self) -> bool:
        """True when progress is drawn: work whose total costs extra (a second walk) asks first."""
        return False

    @contextmanager
    def task(self, label: str, total: int | None = None, unit: str = "B") -> Iterator[Task]:
        yield Task()

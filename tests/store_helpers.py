"""Store locations for tests that run on both backends: a SQLite file in the test's
folder, or a throwaway PostgreSQL database (skipped when PostgreSQL is not up, a failure
under CI=true)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from outbox_helpers import postgres_database

__all__ = ["BACKENDS", "locations"]

BACKENDS = ("sqlite", "postgres")


def locations(backend: str, tmp_path: Path, stack: ExitStack) -> Callable[[str], str]:
    """``at(name)``: where the store called ``name`` lives on ``backend`` — the same name
    gives the same place (a reopened store sees its rows), each new name a new one."""
    made: dict[str, str] = {}

    def at(name: str) -> str:
        if name not in made:
            made[name] = (stack.enter_context(postgres_database()) if backend == "postgres"
                          else str(tmp_path / name))
        return made[name]

    return at


def store_at_fixture(request, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """The body of the ``store_at`` fixture (conftest.py), parametrized over BACKENDS."""
    with ExitStack() as stack:
        yield locations(request.param, tmp_path, stack)

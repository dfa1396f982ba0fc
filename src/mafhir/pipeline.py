"""Tasks in, validated FHIR out: parse → lifecycle → map → validate, one task at a time.

A task that fails is reported with its index and field, and the stream goes on: one bad
task never stops the others. Callers decide whether a failure aborts the whole output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .bundle import Entry
from .context import MapContext
from .errors import CODES, InputError, MafhirError, Problem, as_code
from .io import dumps
from .registry import Lifecycle, Registry
from .tasks.base import TaskModel
from .validation.issues import Issue
from .validation.validator import check_resource

__all__ = ["Failed", "Mapped", "Pipeline", "problems_from_validation"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mapped:
    """One task and the transaction entries made from it."""

    index: int
    task: TaskModel
    entries: tuple[Entry, ...]
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Failed:
    """One task that could not be mapped, with every problem found."""

    index: int
    problems: tuple[Problem, ...]
    raw: Any = field(default=None, repr=False)


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not str(p).startswith("function-"):
            # an unknown key may hold a control character (a form feed splits the line
            # the error is printed on): shown escaped, so each problem stays one line
            name = str(p) if str(p).isprintable() else \
                str(p).encode("unicode_escape").decode("ascii")
            out += f".{name}" if out else name
    return out


def problems_from_validation(exc: ValidationError, prefix: str) -> list[Problem]:
    """Pydantic errors as problems naming the field, without echoing the input (PHI)."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = _loc(err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "timezone_aware":
            msg = ("needs an explicit UTC offset (e.g. 2026-03-04T09:15:00-05:00); "
                   "naive times are refused")
        # a custom error whose type is a problem code (tasks.text: "security") keeps it
        code = err["type"] if err.get("type") in CODES else "invalid"
        out.append(Problem(f"{prefix}.{loc}" if loc else prefix, msg, code))
    return out


class Pipeline:
    """Maps raw task documents with the registered mappers, validating what it makes."""

    CACHE_SIZE = 4096

    def __init__(self, registry: Registry, ctx: MapContext | None = None, validate: bool = True):
        self.registry = registry
        self.ctx = ctx or MapContext()
        self.validate = validate
        self._states: dict[tuple[Lifecycle, str], str] = {}
        # Resources already found valid (the same practitioner, clinic or room recurs in
        # most tasks), keyed by their exact JSON; bounded so memory stays flat on streams.
        self._valid: set[bytes] = set()

    def parse(self, index: int, raw: Any) -> TaskModel:
        where = f"task[{index}]"
        if not isinstance(raw, dict):
            raise InputError([Problem(where, "a task must be a JSON object", "structure")])
        kind = raw.get("task")
        if not isinstance(kind, str) or kind not in self.registry.mappers:
            known = ", ".join(sorted(self.registry.mappers))
            raise InputError([Problem(f"{where}.task", f"must be one of: {known}", "code-invalid")])
        model = self.registry.mappers[kind].model
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise InputError(problems_from_validation(exc, where)) from None

    def map_task(self, index: int, task: TaskModel) -> Mapped:
        where = f"task[{index}]"
        mapper = self.registry.mapper(task.task)
        if mapper.lifecycle is not None:
            # keyed by the lifecycle itself: task kinds that share one (a refill request
            # and its decision) share the state of the thing they both change
            key = (mapper.lifecycle, mapper.lifecycle.key(task))
            try:
                new_state = mapper.lifecycle.step(task, self._states.get(key))
            except InputError as exc:
                raise InputError([Problem(f"{where}.{p.location}" if p.location else where,
                                          p.message, p.code) for p in exc.problems]) from None
        entries = tuple(mapper.to_fhir(task, self.ctx))
        if self.validate:
            issues: list[Issue] = []
            for i, entry in enumerate(entries):
                blob = dumps(entry.resource)
                entry.remember(blob)  # transaction() reads it instead of writing again
                if blob in self._valid:
                    continue
                found = check_resource(entry.resource, self.registry.profiles, f"entry[{i}]",
                                       errors_only=True)
                if found:
                    issues.extend(found)
                else:
                    if len(self._valid) >= self.CACHE_SIZE:
                        self._valid.clear()
                    self._valid.add(blob)
            if issues:
                raise InputError([Problem(f"{where} → {i.expression}", i.diagnostics,
                                          as_code(i.code))
                                  for i in issues])
        if mapper.lifecycle is not None:
            self._states[key] = new_state
        warnings = tuple(Problem(f"{where}.{w.location}", w.message,
                                 w.code) for w in task.warnings())
        return Mapped(index, task, entries, warnings)

    def lifecycle_state(self, task: TaskModel) -> tuple[tuple[Lifecycle, str], str] | None:
        """Where ``task``'s lifecycle stands now (its key and state), if its kind has one."""
        mapper = self.registry.mapper(task.task)
        if mapper.lifecycle is None:
            return None
        key = (mapper.lifecycle, mapper.lifecycle.key(task))
        state = self._states.get(key)
        return None if state is None else (key, state)

    def restore(self, key: tuple[Lifecycle, str], state: str) -> None:
        """Put a lifecycle back where a task read before left it (``lifecycle_state``)."""
        self._states[key] = state

    def replay(self, index: int, raw: Any) -> tuple[tuple[Lifecycle, str], str] | None:
        """Step the lifecycle past a task that was accepted before, without mapping it or
        judging it again: a known task only moves the state the later tasks start from.

        None when the task does not parse or the step is refused — a task accepted before
        is never re-judged, so neither is an error here."""
        try:
            task = self.parse(index, raw)
        except InputError:
            return None
        mapper = self.registry.mapper(task.task)
        if mapper.lifecycle is None:
            return None
        key = (mapper.lifecycle, mapper.lifecycle.key(task))
        try:
            state = mapper.lifecycle.step(task, self._states.get(key))
        except InputError:
            return None
        self._states[key] = state
        return key, state

    def run(self, docs: Iterable[tuple[int, Any]]) -> Iterator[Mapped | Failed]:
        """Map every document; failures are yielded, never raised."""
        for index, raw in docs:
            if isinstance(raw, MafhirError):
                problems = raw.problems if isinstance(raw, InputError) else (Problem("", str(raw),
                                                                                     raw.code),)
                yield Failed(index, tuple(problems))
                continue
            try:
                task = self.parse(index, raw)
                yield self.map_task(index, task)
            except InputError as exc:
                yield Failed(index, exc.problems, raw)
            except MafhirError as exc:
                yield Failed(index, (Problem(f"task[{index}]", str(exc), exc.code),), raw)
            except Exception as exc:  # a mapper bug must not stop the other tasks
                kind = raw.get("task") if isinstance(raw, dict) else None
                # the traceback may quote input values: only at debug level, never by default
                log.debug("mapper for %r failed on task[%d]", kind, index, exc_info=True)
                yield Failed(index, (Problem(f"task[{index}]",
                                             f"internal error mapping '{kind}': "
                                             f"{type(exc).__name__}", "processing"),), raw)

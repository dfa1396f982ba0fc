"""Input to work: tasks are mapped, Bundles checked, both written to the outbox.

Each document gets an idempotency key from its content (and the clinic, for tasks), so
the same input read again — a re-run, a restart after a crash, ``--watch`` re-reading a
file — adds nothing. A known task is never mapped or judged again; a lifecycle task
only moves its state on, which the later tasks start from. Input that cannot become work
is quarantined with its reasons, and the rest of the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..bundle import transaction
from ..context import MapContext
from ..errors import InputError, Problem, as_code
from ..io import dumps, iter_documents
from ..pipeline import Failed, Mapped, Pipeline
from ..registry import Registry
from ..validation import check_bundle
from .keys import canonical, digest, ordering_key
from .model import NewItem
from .store import OutboxStore

__all__ = ["RESEND", "Enqueued", "Enqueuer"]

#: Idempotency-key prefix of items queued with ``resend``: the engine ignores the ledger.
RESEND = "resend:"

JSON = dict[str, Any]
CHUNK = 500


@dataclass
class Enqueued:
    """What reading one input did."""

    added: int = 0
    skipped: int = 0
    quarantined: int = 0
    problems: list[str] | None = None


class Enqueuer:
    """Reads task or Bundle documents into the outbox for one destination."""

    def __init__(self, store: OutboxStore, destination: str, registry: Registry,
                 ctx: MapContext | None = None, validate: bool = True,
                 resend: bool = False) -> None:
        """``resend``: queue everything again under fresh keys, marked to be sent whatever
        the ledger says (the destination lost its data); conditional writes still keep
        the server free of duplicates."""
        self.prefix = f"{RESEND}{time.time_ns()}:" if resend else ""
        self.store = store
        self.destination = destination
        self.registry = registry
        self.ctx = ctx or MapContext()
        self.pipeline = Pipeline(registry, self.ctx, validate=validate)
        # Where each lifecycle task queued (or met again) by this reader left its
        # lifecycle, by idempotency key: reading a file again (``--watch``) puts the state
        # back task by task instead of stepping an already judged task a second time.
        self._after: dict[str, Any] = {}
        # tasks held until the end of their input, by unit of work (``Mapper.unit``)
        self._units: dict[str, list[tuple[str, Mapped, str]]] = {}

    def add_file(self, path: str | Path) -> Enqueued:
        label = Path(path).name
        with open(path, "rb") as stream:
            return self.add_stream(stream, label)

    def add_stream(self, stream: IO[bytes], label: str) -> Enqueued:
        try:
            return self.add_documents(iter_documents(stream, label=label), label)
        except InputError as exc:  # the whole file is unreadable
            return self._quarantine_all(label, exc)

    def _quarantine_all(self, label: str, exc: InputError) -> Enqueued:
        problems = [str(p) for p in exc.problems]
        self.store.quarantine([{"qkey": digest("file", label, *problems), "source": label,
                                "idx": -1, "problems": problems, "raw": None}])
        return Enqueued(quarantined=1, problems=problems)

    def add_documents(self, docs: Iterable[tuple[int, Any]], label: str) -> Enqueued:
        out = Enqueued(problems=[])
        self._units = {}
        for chunk in _chunks(docs, CHUNK):
            self._chunk(chunk, label, out)
        self._flush_units(out)
        return out

    def _flush_units(self, out: Enqueued) -> None:
        """One item per unit of work (``Mapper.unit``): its tasks' entries in one
        transaction, keyed by its tasks' keys together."""
        new = []
        for members in self._units.values():
            bundle = transaction([e for _, result, _ in members for e in result.entries])
            key = self.prefix + digest("unit", *sorted(k for k, _, _ in members))
            kinds = "+".join(dict.fromkeys(r.task.task for _, r, _ in members))
            new.append(NewItem(self.destination, ordering_key(bundle) or digest("item", key),
                               key, dumps(bundle), " + ".join(src for _, _, src in members),
                               kinds))
        self._units = {}
        added = self.store.enqueue(new)
        out.added += added
        out.skipped += len(new) - added

    def add_bundles(self, named: Iterable[tuple[str, JSON]]) -> Enqueued:
        """Enqueue ready transaction Bundles, each with a name for its source."""
        out = Enqueued(problems=[])
        new = []
        for name, bundle in named:
            key = self.prefix + digest("bundle", canonical(bundle))
            new.append(NewItem(self.destination, ordering_key(bundle) or digest("item", key),
                               key, dumps(bundle), name, "bundle"))
        out.added = self.store.enqueue(new)
        out.skipped = len(new) - out.added
        return out

    # ------------------------------------------------------------------ one chunk
    def _chunk(self, chunk: list[tuple[int, Any]], label: str, out: Enqueued) -> None:
        keyed: list[tuple[int, Any, str]] = []
        for index, raw in chunk:
            if isinstance(raw, InputError):
                self._quarantine(out, label, index, list(raw.problems), None)
                continue
            kind = "bundle" if isinstance(raw, dict) and raw.get("resourceType") == "Bundle" \
                else "task"
            salt = self.ctx.clinic.system if kind == "task" else ""
            keyed.append((index, raw, self.prefix + digest(kind, salt, canonical(raw))))
        known = self.store.known_keys(self.destination, [k for _, _, k in keyed])
        new: list[NewItem] = []
        for index, raw, key in keyed:
            if key in known:
                # accepted before: never mapped or judged again; a lifecycle task only
                # moves the state on, so that new tasks after it start from the right one
                if self._has_lifecycle(raw):
                    self._replay(index, raw, key)
                out.skipped += 1
                continue
            item = self._item(index, raw, key, label, out)
            if item is not None:
                new.append(item)
        added = self.store.enqueue(new)
        out.added += added
        out.skipped += len(new) - added

    def _replay(self, index: int, raw: Any, key: str) -> None:
        after = self._after.get(key)
        if after is not None:
            self.pipeline.restore(*after)
            return
        stepped = self.pipeline.replay(index, raw)
        if stepped is not None:
            self._after[key] = stepped

    def _has_lifecycle(self, raw: Any) -> bool:
        kind = raw.get("task") if isinstance(raw, dict) else None
        mapper = self.registry.mappers.get(kind) if isinstance(kind, str) else None
        return mapper is not None and mapper.lifecycle is not None

    def _item(self, index: int, raw: Any, key: str, label: str, out: Enqueued
              ) -> NewItem | None:
        if isinstance(raw, dict) and raw.get("resourceType") == "Bundle":
            return self._bundle_item(index, raw, key, label, out)
        (result,) = self.pipeline.run([(index, raw)])
        if isinstance(result, Failed):
            self._quarantine(out, label, index, list(result.problems), raw)
            return None
        after = self.pipeline.lifecycle_state(result.task)
        if after is not None:
            self._after[key] = after
        source = f"{label}#{index} {result.task.task} {getattr(result.task, 'id', '')}"
        unit = self._unit_of(result)
        if unit is not None:  # goes out with the rest of its unit, at the end of the input
            self._units.setdefault(unit, []).append((key, result, source))
            return None
        bundle = transaction(result.entries)
        okey = ordering_key(bundle) or digest("item", key)
        return NewItem(self.destination, okey, key, dumps(bundle), source, result.task.task)

    def _unit_of(self, result: Mapped) -> str | None:
        mapper = self.registry.mappers.get(result.task.task)
        return mapper.unit(result.task) if mapper is not None and mapper.unit else None

    def _bundle_item(self, index: int, raw: JSON, key: str, label: str, out: Enqueued
                     ) -> NewItem | None:
        where = f"{label}[{index}]"
        if raw.get("type") not in ("transaction", "batch"):
            self._quarantine(out, label, index,
                             [Problem(f"{where}.type", "must be a transaction or batch Bundle",
                                      "not-supported")],
                             raw)
            return None
        issues = check_bundle(raw, self.registry.profiles, errors_only=True)
        if issues:
            self._quarantine(out, label, index,
                             [Problem(f"{where} → {i.expression}", i.diagnostics, as_code(i.code))
                              for i in issues], raw)
            return None
        okey = ordering_key(raw) or digest("item", key)
        return NewItem(self.destination, okey, key, dumps(raw), f"{label}#{index} bundle",
                       "bundle")

    def _quarantine(self, out: Enqueued, label: str, index: int, problems: list[Any],
                    raw: Any) -> None:
        texts = [str(p) for p in problems]
        blob = dumps(raw).decode() if raw is not None else None
        self.store.quarantine([{"qkey": digest("q", label, str(index), blob or "", *texts),
                                "source": label, "idx": index, "problems": texts,
                                "raw": blob}])
        out.quarantined += 1
        if out.problems is not None:
            out.problems.extend(texts)


def _chunks(docs: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    chunk: list[tuple[int, Any]] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

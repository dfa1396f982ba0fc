"""An A40 merge applied to what mafhir keeps itself: the local store and the outbox.

The FHIR side (``Patient.link``) is in the Bundle :func:`.adt.merge_to_fhir` makes; but
results already filed under the merged-away record, and results still waiting in the
outbox for it, would stay there. :func:`repoint` moves both to the survivor, each in one
transaction, and does nothing more when the A40 is sent again.
"""

from __future__ import annotations

from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.message import Message
from mafhir.hl7v2.patient import patient_from_pid
from mafhir.identity import identifier_query

from .adt import merged_away

__all__ = ["merge_identities", "repoint"]


def merge_identities(msg: Message, ctx: V2Context) -> tuple[tuple[str, str], tuple[str, str]]:
    """((system, value) merged away, (system, value) surviving) of an A40 (InputError
    naming MRG-1 or PID-3 when either is missing or of an unknown authority)."""
    old = merged_away(msg, ctx)
    pid = msg.first("PID")
    from mafhir.errors import InputError, Problem

    if pid is None:
        raise InputError([Problem("PID", "the PID segment is missing", "required")])
    survivor = patient_from_pid(pid, ctx, msg.sender_name).resource["identifier"][0]
    return (old["system"], old["value"]), (survivor["system"], survivor["value"])


def repoint(msg: Message, ctx: V2Context, local_store: str | None,
            outbox: str | None) -> tuple[int, int]:
    """Re-point the local store at ``local_store`` and the outbox at ``outbox`` (either
    may be None: not used) from the A40's merged-away patient to its survivor. Returns
    (resources moved, outbox items changed)."""
    old, new = merge_identities(msg, ctx)
    moved = changed = 0
    if local_store:
        from mafhir.connectors.local import LocalStore

        store = LocalStore(local_store)
        try:
            moved = store.repoint_patient(old, new)
        finally:
            store.close()
    if outbox:
        from mafhir.outbox.store import open_store

        box = open_store(outbox)
        try:
            changed = box.repoint_patient(identifier_query(*old), identifier_query(*new))
        finally:
            box.close()
    return moved, changed

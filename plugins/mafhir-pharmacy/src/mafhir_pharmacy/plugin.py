"""The pharmacy plugin's hooks: task kinds, profile rules, v2 converters, channels, commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mafhir import Mapper, Profile, hookimpl
from mafhir.registry import ConnectorSpec, Converter, MessageHandler

from . import __version__

if TYPE_CHECKING:
    import click

__all__ = [
    "__version__",
    "answer_target",
    "register_commands",
    "register_connectors",
    "register_converters",
    "register_dashboard_panels",
    "register_handlers",
    "register_mappers",
    "register_profiles",
    "worklist_items",
    "worklist_path",
]

#: Where the refill worklist lives unless ``--set pharmacy.worklist=PATH`` says otherwise.
WORKLIST_ENV = "MAFHIR_PHARMACY_WORKLIST"
DEFAULT_WORKLIST = "mafhir-pharmacy.sqlite"


def worklist_path(settings: dict[str, str] | None = None) -> str:
    """The worklist file: the listener's setting, else ``$MAFHIR_PHARMACY_WORKLIST``."""
    import os

    return (settings or {}).get("pharmacy.worklist") or os.environ.get(WORKLIST_ENV) or \
        DEFAULT_WORKLIST


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    from .mappers import mappers

    for mapper in mappers():
        register(mapper)


@hookimpl
def register_profiles(register: Callable[[Profile], None]) -> None:
    from .profiles import PROFILES

    for profile in PROFILES:
        register(profile)


@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .v2in import rde_o11_to_fhir, refill_requests_to_fhir
    from .v2out import rde_o11, rre_o26

    register(Converter("hl7v2", "RDE^O11", to_fhir=rde_o11_to_fhir, from_fhir=rde_o11,
                       description="prescriptions (pharmacy encoded order) ⇄ US Core "
                                   "MedicationRequest"))
    register(Converter("hl7v2", "RDE^O25", to_fhir=refill_requests_to_fhir,
                       description="refill authorization requests → worklist Tasks"))
    register(Converter("hl7v2", "OMP^O09", to_fhir=refill_requests_to_fhir,
                       description="pharmacy treatment orders sent as refill requests → "
                                   "worklist Tasks"))
    register(Converter("hl7v2", "RRE^O26", from_fhir=rre_o26,
                       description="refill decisions → refill authorization acknowledgment"))


def answer_target(settings: dict[str, str], sender: str) -> str | None:
    """Where a v2 refill request's answer goes: ``pharmacy.answer-to.APP^FACILITY`` (MSH-3
    and MSH-4 of the request) or ``pharmacy.answer-to``, e.g. ``pharmacy-v2:HOST:PORT``."""
    return settings.get(f"pharmacy.answer-to.{sender.replace('|', '^')}") or \
        settings.get("pharmacy.answer-to")


class _WorklistHandler:
    """The refill handler with the worklist it opened (closed with the listener).

    With an answer target set, each request it takes is recorded with it, so that
    ``mafhir pharmacy decide`` answers the pharmacy (RRE^O26) without being told where.
    """

    def __init__(self, setup: Any) -> None:
        from .worklist import LocalWorklist, RefillHandler

        self.settings = dict(setup.settings)
        self.ctx = setup.ctx
        self.worklist = LocalWorklist(worklist_path(self.settings))
        self.handle = RefillHandler(setup.registry, setup.ctx, self.worklist, setup.deliver,
                                    strict=bool(getattr(setup, "strict", False)))

    def __call__(self, msg: Any) -> Any:
        from .v2in import refill_request_tasks

        outcome = self.handle(msg)
        target = answer_target(self.settings, msg.sender_name)
        if target and outcome.status in ("processed", "review"):
            for task in refill_request_tasks(msg, self.ctx):
                self.worklist.add_source(task.id, target, "", None)
        return outcome

    def close(self) -> None:
        self.worklist.close()


@hookimpl
def register_handlers(register: Callable[[MessageHandler], None]) -> None:
    register(MessageHandler("hl7v2", ("RDE^O25", "OMP^O09"), _WorklistHandler,
                            "refill requests → the pharmacy worklist"))


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from .channels import FhirPharmacy, V2Pharmacy

    register(ConnectorSpec("pharmacy-fhir", FhirPharmacy,
                           "a pharmacy's FHIR endpoint: MedicationRequests posted, "
                           "MedicationDispense followed"))
    register(ConnectorSpec("pharmacy-v2", V2Pharmacy,
                           "a pharmacy system over HL7 v2 MLLP (HOST:PORT): RDE^O11 per "
                           "prescription, RRE^O12/ACK checked"))


def _existing_worklist() -> Any:
    """The refill worklist, or None when its file does not exist yet: a reader (the
    dashboard, ``mafhir worklist``) never creates one."""
    from pathlib import Path

    from mafhir.storage import is_postgres

    from .worklist import LocalWorklist

    path = worklist_path()
    if not is_postgres(path) and not Path(path).exists():
        return None
    return LocalWorklist(path)


def worklist_rows() -> list[tuple[str, ...]]:
    """The refill worklist for the dashboard, without patient data: each request's id,
    state, prescription id, the day it arrived and its answer's delivery. Nothing when the
    worklist file does not exist (the dashboard never creates one)."""
    worklist = _existing_worklist()
    if worklist is None:
        return []
    try:
        answered = {row[0]: row[2] for row in worklist.answers(None)}
        return [(task.id, status, task.prescription, task.received.date().isoformat(),
                 answered.get(task.id, "–")) for status, task in worklist.items()]
    finally:
        worklist.close()


@hookimpl
def register_dashboard_panels(register: Callable[[Any], None]) -> None:
    from mafhir.web.panels import Panel

    register(Panel("pharmacy-worklist", "Refill worklist",
                   ("request", "status", "prescription", "received", "answer"),
                   worklist_rows, "Refill requests from pharmacies (mafhir pharmacy worklist; "
                                  f"${WORKLIST_ENV} or {DEFAULT_WORKLIST})."))


#: When a refill request is due on the MA's worklist: two days after it came (a project
#: rule: pharmacies commonly ask for an answer within 48-72 hours).
REFILL_TURNAROUND_HOURS = 48


@hookimpl
def worklist_items() -> list[Any]:
    """The refill requests waiting for a decision, on the MA's one worklist (``mafhir
    worklist``); they are closed with ``mafhir pharmacy decide``. None when there is no
    worklist file yet (reading must not create one)."""
    from datetime import timedelta

    from mafhir.worklist import WorklistItem

    worklist = _existing_worklist()
    if worklist is None:
        return []
    try:
        rows = worklist.items("requested") + worklist.items("review")
    finally:
        worklist.close()
    out = []
    for state, task in rows:
        held = " (held for review: no prescription of ours matches)" if state == "review" \
            else ""
        out.append(WorklistItem(
            id=f"refill:{task.id}", kind="refill", patient=task.patient.mrn,
            patient_system=task.patient.system or "",
            summary=f"Refill request for prescription {task.prescription}{held}; decide with "
                    "mafhir pharmacy decide",
            due=task.received + timedelta(hours=REFILL_TURNAROUND_HOURS), status=state,
            source="pharmacy"))
    return out


@hookimpl
def register_commands(cli: click.Group) -> None:
    from mafhir.cli.lazy import add_lazy_command

    add_lazy_command(cli, "pharmacy", "mafhir_pharmacy.cli:pharmacy_group",
                     "Prescriptions to pharmacies, refill requests back (FHIR and HL7 v2).")

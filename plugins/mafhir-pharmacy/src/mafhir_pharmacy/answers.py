"""Delivering the answers owed to pharmacies: RRE^O26 over MLLP, or the FHIR Task updated.

The worklist writes an answer as ``pending`` in the same transaction as the decision
(:meth:`LocalWorklist.decide`), so the answer outlives a pharmacy that is down, a crash,
or a closed laptop: :func:`deliver_answers` sends every pending one and marks it ``sent``
only once the pharmacy took it (MSA AA/CA; the FHIR transaction committed). A network
failure leaves it pending (``mafhir pharmacy answer`` tries again), and so does an AR/CR
(the pharmacy rejects it *for now*, as the core ``mllp`` connector reads them); a refusal
(AE/CE, a FHIR refusal) marks it ``refused`` with the pharmacy's reason, for the MA to see.
Each answer is tried on its own: whatever goes wrong with one (an unreadable reply, a
failure building it) leaves that one pending with the error's class — never its text,
which could carry patient data — and the next is still sent. The v2 message is built once
and kept, so a re-send after a lost ACK carries the same MSH-10 and the pharmacy's
duplicate check drops it; the FHIR answer is guarded by ``ifMatch`` and recognised as
already written when the Task already carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.errors import MafhirError
from mafhir.hl7v2 import MLLPClient, V2Context, from_fhir, read_ack
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet

from .fhirrefill import OPEN, fhir_answer
from .mappers import refill_decision_to_fhir
from .worklist import LocalWorklist

__all__ = ["Delivery", "deliver_answers", "v2_address"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """One answer's fate in this run: ``sent``, ``pending`` (try again) or ``refused``."""

    request: str
    target: str
    status: str
    detail: str = ""


def v2_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` of a ``pharmacy-v2`` target, checked here so that a bad one is named
    (``--answer``, a stored target) instead of failing deep in the send."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"pharmacy-v2 needs HOST:PORT (e.g. pharmacy-v2:10.1.2.9:2575), got "
                         f"'pharmacy-v2:{address}'")
    return host, int(port)


def _v2(worklist: LocalWorklist, request: str, address: str, clinic: Clinic,
        timeout: float) -> Delivery:
    target = f"pharmacy-v2:{address}"
    try:
        host, port = v2_address(address)
    except ValueError as exc:  # re-sending cannot mend the address: the MA must see it
        return Delivery(request, target, "refused", str(exc))
    text = worklist.answer_payload(request)
    if text is None:
        decision = worklist.decision(request)
        assert decision is not None
        ctx = MapContext(clinic=clinic)
        bundle = transaction(refill_decision_to_fhir(decision, ctx))
        text = from_fhir(get_registry(), "RRE^O26", ResourceSet.from_bundle(bundle),
                         V2Context(map=ctx))
        worklist.keep_payload(request, text)
        text = worklist.answer_payload(request) or text
    try:
        with MLLPClient(host, port, timeout=timeout, retries=1) as client:
            reply = client.send(text)
    except MafhirError as exc:
        return Delivery(request, target, "refused" if not exc.transient else "pending",
                        str(exc))
    try:
        ack = read_ack(reply)
    except Exception as exc:  # whether it was taken is unknown: the re-send is deduplicated
        return Delivery(request, target, "pending", f"the pharmacy's reply could not be read "
                                                    f"({type(exc).__name__})")
    if ack.code in ("AA", "CA"):
        return Delivery(request, target, "sent", f"{ack.code} to {ack.acked_id}")
    if ack.code in ("AR", "CR"):
        return Delivery(request, target, "pending",
                        f"the pharmacy answered {ack.code} (not now): "
                        f"{'; '.join(ack.errors) or 'no reason'}")
    return Delivery(request, target, "refused",
                    f"the pharmacy answered {ack.code}: {'; '.join(ack.errors) or 'no reason'}")


def _fhir(worklist: LocalWorklist, request: str, base: str, clinic: Clinic) -> Delivery:
    from .channels import FhirPharmacy

    target = f"pharmacy-fhir:{base}"
    source = worklist.source(request)
    decision = worklist.decision(request)
    assert decision is not None
    _, task_ref, prior_ref = source if source is not None else ("", "", None)
    if prior_ref is None:
        return Delivery(request, target, "refused", "the request did not come from a FHIR "
                                                    "Task there; nothing to answer")
    pharmacy = FhirPharmacy(base, clinic_system=clinic.system)
    try:
        task, _ = pharmacy.client.read(*task_ref.split("/"))
        mine = f"{clinic.system}/refill_request"
        answered = any(i.get("system") == mine and i.get("value") == request
                       for i in task.get("identifier", []) or [])
        wanted = "completed" if decision.decision == "approved" else "rejected"
        if answered and task.get("status") == wanted:
            return Delivery(request, target, "sent", f"{task_ref} was already {wanted}")
        if task.get("status") not in OPEN:
            return Delivery(request, target, "refused", f"{task_ref} is now "
                                                        f"'{task.get('status')}' at the "
                                                        "pharmacy; the answer was not written")
        bundle = fhir_answer(decision, task, prior_ref, MapContext(clinic=clinic))
        pharmacy.client.send(bundle, mode="transaction")
    except MafhirError as exc:
        return Delivery(request, target, "pending" if exc.transient else "refused", str(exc))
    finally:
        pharmacy.close()
    return Delivery(request, target, "sent", f"{task_ref} → {wanted}")


def deliver_answers(worklist: LocalWorklist, clinic: Clinic, only: str | None = None,
                    timeout: float = 30.0) -> list[Delivery]:
    """Send every pending answer (or just ``only``'s); record and return each outcome.

    One answer's failure is that answer's alone: it is recorded (pending, with the
    error's class) and the others are still attempted.
    """
    out = []
    for request, target, _status, _attempts, _error in worklist.answers("pending"):
        if only is not None and request != only:
            continue
        channel, _, address = target.partition(":")
        try:
            if channel == "pharmacy-v2":
                done = _v2(worklist, request, address, clinic, timeout)
            elif channel == "pharmacy-fhir":
                done = _fhir(worklist, request, address, clinic)
            else:
                done = Delivery(request, target, "refused", f"no answer channel '{channel}' "
                                                            "(pharmacy-v2 or pharmacy-fhir)")
        except Exception as exc:  # the text could name the patient: the class only
            done = Delivery(request, target, "pending", f"not sent ({type(exc).__name__}); "
                                                        "kept to try again")
        worklist.mark_answer(request, done.status, done.detail or None)
        out.append(done)
    return out

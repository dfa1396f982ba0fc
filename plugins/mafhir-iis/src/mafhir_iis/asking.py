"""Asking a registry about one patient: QBP^Q11 out, RSP^K11 back, over the registry's
transport (the CDC SOAP service or MLLP, as ``mafhir.toml [iis.NAME]`` says).

Queries are synchronous (CDC IG App. B) and change nothing at the registry, so a
transient failure is retried by the transport's own policy and nothing is queued. The
answer must carry the query tag that was asked (QAK-1): an answer to another question
is refused rather than shown as this patient's record.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from mafhir.errors import InputError, Problem
from mafhir.hl7v2 import MLLPClient, V2Context

from .config import IisConfig
from .query import Kind, qbp_q11
from .rsp import QueryResult, read_rsp
from .soap import SoapClient

__all__ = ["ask_registry", "registry_context"]

JSON = dict[str, Any]


def registry_context(config: IisConfig, ctx: V2Context) -> V2Context:
    """``ctx`` as this registry's messages need it: MSH-3/4/5/6 and processing id from
    the configuration, and the clinic's MRN authority (PID-3 as written by mafhir, echoed
    by the registry) mapped to the clinic's MRN system."""
    mrn = ctx.map.clinic.mrn_namespace
    return replace(ctx, application=config.sending_application, facility=config.facility_id,
                   receiving=(config.receiving_application, config.receiving_facility),
                   processing_id=config.processing_id,
                   namespaces={**ctx.namespaces, config.sending_application: mrn})


def ask_registry(config: IisConfig, patient: JSON, kind: Kind, ctx: V2Context,
                 max_records: int = 10) -> QueryResult:
    """The registry's answer about ``patient`` (a FHIR Patient): Z34 history or Z44
    evaluated history and forecast. QueryRefused for AE/AR; TransientError when the
    registry cannot be reached; InputError for what the query or the answer lacks."""
    ctx = registry_context(config, ctx)
    tag = uuid.uuid4().hex[:16]
    text = qbp_q11(patient, kind, ctx=ctx, query_tag=tag, control_id=uuid.uuid4().hex[:20],
                   max_records=max_records, sending_organization=config.sending_organisation,
                   receiving_organization=config.receiving_organisation)
    reply: str | bytes
    if config.transport == "soap":
        soap = SoapClient(config.url, config.credentials(), config.facility_id,
                          timeout=config.timeout, verify=config.verify)
        try:
            reply = soap.submit(text)
        finally:
            soap.close()
    else:
        host, _, port = config.mllp.rpartition(":")
        with MLLPClient(host, int(port), timeout=config.timeout) as client:
            reply = client.send(text)
    result = read_rsp(reply, ctx, patient)
    if result.query_tag != tag:
        raise InputError([Problem("QAK-1", "the registry answered another query (its query "
                                  "tag is not the one asked)", "conflict")])
    return result

"""The pharmacy task kinds in the clinic's words: prescription, refill_request, refill_decision.

Every model forbids unknown fields. What cannot be a prescription is refused here with
the field named: an RxNorm code that is not a code or not in the known list
(:mod:`.codes`), a sig that cannot be structured (:mod:`.sig`), a quantity without a
unit, a controlled substance on a channel that cannot carry it, refills on a
schedule II drug.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mafhir.tasks import PatientRef, PractitionerRef, TaskModel
from mafhir.tasks.base import TaskId
from mafhir.tasks.common import Address

from .codes import DENIAL_REASONS, FREQUENCIES, ROUTES, known_drug
from .sig import DOSE_UNITS, parse_sig

__all__ = [
    "CONTROLLED_CHANNELS",
    "Channel",
    "Dose",
    "Medication",
    "Pharmacy",
    "PrescriptionTask",
    "Quantity",
    "RefillDecisionTask",
    "RefillRequestTask",
    "Renewal",
    "ReportedPharmacy",
    "Schedule",
    "Sig",
]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

Schedule = Literal["CII", "CIII", "CIV", "CV"]
#: How a prescription leaves the clinic. Only an EPCS-certified NCPDP SCRIPT route (or
#: paper with a wet signature) may carry a controlled substance; FHIR and HL7 v2 here cannot.
Channel = Literal["fhir", "hl7v2", "ncpdp-script", "print"]
CONTROLLED_CHANNELS = frozenset({"ncpdp-script", "print"})
Route = Literal[tuple(ROUTES)]
Frequency = Literal[tuple(FREQUENCIES)]
UNITS = sorted(set(DOSE_UNITS.values()) | {"{tbl}", "{cap}", "mL", "g", "{inhaler}",
                                           "{bottle}", "{tube}", "{pen}", "{vial}"})


class Medication(BaseModel):
    """The drug: an RxNorm code from the known list, the NDC when known."""

    model_config = _MODEL

    rxnorm: str = Field(pattern=r"^\d{1,8}$", description="RxNorm RXCUI (digits)")
    ndc: str | None = Field(default=None, pattern=r"^(\d{11}|\d{4,5}-\d{3,4}-\d{1,2})$",
                            description="NDC (11 digits, or the hyphenated 10-digit form)")
    display: str | None = None

    @model_validator(mode="after")
    def _known(self) -> Medication:
        if known_drug(self.rxnorm) is None:
            raise ValueError(f"RxNorm {self.rxnorm} is not in the known drug list "
                             "(mafhir_pharmacy/data/drugs.csv); check the code")
        return self

    @property
    def name(self) -> str:
        drug = known_drug(self.rxnorm)
        return self.display or (drug.display if drug else self.rxnorm)

    @property
    def schedule(self) -> str | None:
        drug = known_drug(self.rxnorm)
        return drug.schedule if drug else None


class Dose(BaseModel):
    model_config = _MODEL

    value: float = Field(gt=0)
    unit: str = Field(min_length=1, description="UCUM, e.g. {tbl}, mg, mL, {puff}")


def _needs_unit(data: Any) -> Any:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        raise ValueError("a quantity needs a unit (e.g. {\"value\": 30, \"unit\": \"{tbl}\"})")
    if isinstance(data, dict) and not data.get("unit"):
        raise ValueError("a quantity needs a unit (e.g. {tbl}, {cap}, mL)")
    return data


class Quantity(BaseModel):
    """How much to dispense, always with its unit."""

    model_config = _MODEL

    value: float = Field(gt=0)
    unit: str = Field(min_length=1, description=f"UCUM, one of {', '.join(UNITS)}")

    @model_validator(mode="before")
    @classmethod
    def _unit(cls, data: Any) -> Any:
        return _needs_unit(data)

    @model_validator(mode="after")
    def _known_unit(self) -> Quantity:
        if self.unit not in UNITS:
            raise ValueError(f"unit '{self.unit}' is not one of {', '.join(UNITS)}")
        return self


class Sig(BaseModel):
    """Directions: the free text, and its structure (given, or read from the text)."""

    model_config = _MODEL

    text: str = Field(min_length=1, max_length=1000)
    dose: Dose | None = None
    route: Route | None = None
    frequency: Frequency | None = Field(default=None, description="v2 table 0335 code")
    duration_days: int | None = Field(default=None, ge=1, le=365)
    as_needed: bool = False
    as_needed_reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _structure(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return data
        parsed = parse_sig(data["text"])
        out = dict(data)
        if out.get("dose") is None and parsed.dose_value is not None:
            out["dose"] = {"value": parsed.dose_value, "unit": parsed.dose_unit}
        for key, value in (("route", parsed.route), ("frequency", parsed.frequency),
                           ("duration_days", parsed.duration_days),
                           ("as_needed_reason", parsed.as_needed_reason)):
            if out.get(key) is None and value is not None:
                out[key] = value
        if "as_needed" not in out and parsed.as_needed:
            out["as_needed"] = True
        missing = []
        if out.get("route") is None:
            missing.append("route")
        if out.get("frequency") is None and not out.get("as_needed"):
            missing.append("frequency")
        if missing:
            raise ValueError(f"cannot be structured: no {' or '.join(missing)} recognised in "
                             f"the text; give sig.{' and sig.'.join(missing)} or rewrite it")
        return out


class Pharmacy(BaseModel):
    """The patient's pharmacy: NCPDP id and/or NPI, name, address."""

    model_config = _MODEL

    ncpdp_id: str | None = Field(default=None, pattern=r"^\d{7}$", description="NCPDP Provider ID")
    npi: str | None = Field(default=None, pattern=r"^\d{10}$")
    name: str = Field(min_length=1)
    address: Address | None = None
    phone: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> Pharmacy:
        if not (self.ncpdp_id or self.npi):
            raise ValueError("a pharmacy needs its ncpdp_id or npi")
        return self


class ReportedPharmacy(Pharmacy):
    """A pharmacy as a pharmacy system names itself in a request it sends: its NCPDP id or
    NPI, else its own id in its own namespace (``local_id`` in ``local_system``), kept as
    sent rather than refused — the request is real even when the id is not national."""

    local_id: str | None = Field(default=None, min_length=1, max_length=64)
    local_system: str | None = Field(default=None, pattern=r"^(urn:|https?://)\S+$")

    @model_validator(mode="after")
    def _identified(self) -> ReportedPharmacy:
        if not (self.ncpdp_id or self.npi or (self.local_id and self.local_system)):
            raise ValueError("a pharmacy needs its ncpdp_id, npi, or its own id and namespace")
        return self


class Renewal(BaseModel):
    """What an approved renewal prescribes (the prior prescription, possibly changed)."""

    model_config = _MODEL

    medication: Medication
    sig: Sig
    quantity: Quantity
    days_supply: int = Field(ge=1, le=365)
    refills: int = Field(ge=0, le=11, description="refills after the first fill")
    substitution_allowed: bool = True
    pharmacy: Pharmacy


class PrescriptionTask(TaskModel):
    """The provider's order, relayed by the MA to the patient's pharmacy."""

    kind: ClassVar[str] = "prescription"
    task: Literal["prescription"]
    patient: PatientRef
    written: AwareDatetime = Field(description="When the provider signed it (authoredOn)")
    prescriber: PractitionerRef
    dea: str | None = Field(default=None, pattern=r"^[A-Z][A-Z9]\d{7}$",
                            description="Prescriber's DEA number (controlled substances)")
    medication: Medication
    sig: Sig
    quantity: Quantity
    days_supply: int = Field(ge=1, le=365)
    refills: int = Field(default=0, ge=0, le=11, description="refills after the first fill")
    substitution_allowed: bool = True
    pharmacy: Pharmacy
    diagnoses: list[Annotated[str, Field(pattern=r"^[A-TV-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")]] = \
        Field(default_factory=list, description="ICD-10-CM codes")
    controlled: Schedule | None = Field(
        default=None, description="DEA schedule, when the drug list does not already say so")
    channel: Channel | None = Field(default=None, description="how it will be sent")
    visit: TaskId | None = None
    note: str | None = None

    @property
    def schedule(self) -> str | None:
        return self.controlled or self.medication.schedule

    @model_validator(mode="after")
    def _controlled(self) -> PrescriptionTask:
        schedule = self.schedule
        if schedule and self.channel is not None and self.channel not in CONTROLLED_CHANNELS:
            raise ValueError(f"a schedule {schedule[1:]} controlled substance cannot be sent by "
                             f"'{self.channel}': only an EPCS-certified NCPDP SCRIPT route "
                             "(channel 'ncpdp-script') or a signed paper prescription may "
                             "carry it")
        if schedule == "CII" and self.refills:
            raise ValueError("a schedule II prescription cannot have refills (21 CFR 1306.12)")
        if schedule and not self.dea:
            raise ValueError("a controlled substance needs the prescriber's 'dea' number")
        return self


class RefillRequestTask(TaskModel):
    """A pharmacy asks to renew a prescription: a Task on the prescriber's worklist."""

    kind: ClassVar[str] = "refill_request"
    task: Literal["refill_request"]
    patient: PatientRef
    received: AwareDatetime
    prescription: TaskId = Field(description="The clinic's id of the prescription to renew")
    prescriber: PractitionerRef | None = Field(
        default=None, description="None when the pharmacy's request names none (kept, "
                                  "flagged incomplete; the worklist item has no owner)")
    pharmacy: ReportedPharmacy
    medication: Medication | None = None
    requested_quantity: Quantity | None = None
    requested_refills: int | None = Field(default=None, ge=0, le=11)
    message_id: str | None = Field(default=None, max_length=199,
                                   description="MSH-10 of the v2 request (answered in MSA-2)")
    note: str | None = None


class RefillDecisionTask(TaskModel):
    """The prescriber's answer to a refill request; the answer also goes to the pharmacy."""

    kind: ClassVar[str] = "refill_decision"
    task: Literal["refill_decision"]
    request: TaskId = Field(description="The refill_request task id")
    request_status: Literal["requested"] | None = Field(
        default=None, description="The request's state when it is not from this run "
        "(the worklist fills it)")
    received: AwareDatetime | None = Field(default=None, description="When the request came")
    decided: AwareDatetime
    decision: Literal["approved", "denied"]
    reason: Literal[tuple(DENIAL_REASONS)] | None = None
    reason_text: str | None = None
    patient: PatientRef
    prescription: TaskId = Field(description="The prescription being renewed")
    prescriber: PractitionerRef
    pharmacy: ReportedPharmacy  # the requesting pharmacy, as it named itself
    renewal: Renewal | None = None
    message_id: str | None = Field(default=None, max_length=199)

    @model_validator(mode="after")
    def _consistent(self) -> RefillDecisionTask:
        if self.decision == "approved" and self.renewal is None:
            raise ValueError("an approved refill needs 'renewal' (what is prescribed)")
        if self.decision == "denied" and self.reason is None:
            raise ValueError("a denied refill needs a 'reason' "
                             f"({', '.join(DENIAL_REASONS)})")
        if self.decision == "denied" and self.renewal is not None:
            raise ValueError("a denied refill prescribes nothing: leave 'renewal' out")
        if self.renewal is not None and self.renewal.medication.schedule:
            raise ValueError("a controlled substance cannot be renewed through this channel; "
                             "write a new prescription by EPCS")
        return self

"""A later allergy closes an earlier "no known allergies" statement of the same patient.

"No known allergies" (SNOMED 716186003) and "no known drug allergies" (409137002) are
AllergyIntolerance records like any other (mapping-reference §6.2). Neither the R4
resource nor US Core says what becomes of one when an allergy is recorded later; EHRs that
keep an allergy list cancel it (Oracle Millennium's FHIR API: "if NKA, NKMA, or both exist
on the patient's allergy profile and a new allergy is added, the NKA and NKMA statuses are
canceled"), since an active NKA beside an active penicillin allergy is a list that
contradicts itself. The statement was true when it was made, so it is not rewritten as an
error (``entered-in-error``) or as disproven (``refuted``): its ``clinicalStatus`` becomes
``inactive`` and ``verificationStatus`` stays ``confirmed``, in a new version (the active
one stays in the history), with a note naming the allergy that closed it.

Which statements close: an active NKA by any positive allergy (active, neither refuted nor
entered in error); an active NKDA by one whose category is medication or not given (an
allergy of unknown category may be a drug's). Only a statement recorded no later than the
allergy: an older allergy delivered late does not close a newer "no known allergies".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import systems

__all__ = [
    "NO_KNOWN_ALLERGY",
    "NO_KNOWN_DRUG_ALLERGY",
    "closed_by",
    "is_positive",
    "negation_code",
]

JSON = dict[str, Any]

NO_KNOWN_ALLERGY = "716186003"
NO_KNOWN_DRUG_ALLERGY = "409137002"
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def _code(concept: Any, system: str) -> str | None:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for c in codings if isinstance(codings, list) else []:
        if isinstance(c, dict) and c.get("system") == system:
            return str(c.get("code"))
    return None


def negation_code(res: JSON) -> str | None:
    """The SNOMED negation code of a "no known (drug) allergies" record, else None."""
    code = _code(res.get("code"), systems.SNOMED)
    return code if code in (NO_KNOWN_ALLERGY, NO_KNOWN_DRUG_ALLERGY) else None


def is_positive(res: JSON) -> bool:
    """An active allergy to something (not a negation, not refuted or entered in error)."""
    return (res.get("resourceType") == "AllergyIntolerance" and negation_code(res) is None
            and _code(res.get("clinicalStatus"), CLINICAL) == "active"
            and _code(res.get("verificationStatus"), VERIFICATION)
            not in ("refuted", "entered-in-error"))


def _recorded(res: JSON) -> datetime | None:
    text = res.get("recordedDate")
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _closes(negation: JSON, allergy: JSON) -> bool:
    code = negation_code(negation)
    if code is None or _code(negation.get("clinicalStatus"), CLINICAL) != "active":
        return False
    if code == NO_KNOWN_DRUG_ALLERGY and allergy.get("category") \
            and "medication" not in allergy["category"]:
        return False
    said, found = _recorded(negation), _recorded(allergy)
    if said is not None and found is not None and said.tzinfo and found.tzinfo:
        return said <= found
    return True


def closed_by(allergy: JSON, reference: str, recorded: list[JSON]) -> list[JSON]:
    """Of the patient's ``recorded`` AllergyIntolerances, the negations the positive
    ``allergy`` (stored as ``reference``) closes, each as its next version: inactive, a
    note added; everything else in them as it was. Empty when ``allergy`` is not positive."""
    if not is_positive(allergy):
        return []
    out = []
    for negation in recorded:
        if _closes(negation, allergy):
            note = {"text": f"No longer applies: an allergy was recorded later ({reference})."}
            out.append({**negation,
                        "clinicalStatus": {"coding": [{"system": CLINICAL,
                                                       "code": "inactive"}]},
                        "note": [*(negation.get("note") or []), note]})
    return out

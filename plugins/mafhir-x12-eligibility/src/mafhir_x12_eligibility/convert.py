"""``mafhir convert --to x12 --message 270 FILE``: FHIR (a Bundle or MA tasks) → a 270.

The partner's identity (sender/receiver ids, the clinic's NPI) is ``[x12]`` /
``[x12.NAME]`` of mafhir.toml (``MAFHIR_X12_PARTNER`` names NAME; default the shared
table). The control number comes from the same durable counter as a real send — a
written 270 may be sent by hand, and must not repeat one mafhir sent — and the 270 is
validated by pyx12 like every 270 mafhir writes.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mafhir.resourceset import ResourceSet

from .config import load_partner
from .controlnumbers import ControlNumbers
from .validate import validate_270
from .write270 import request_from_fhir, write_270

__all__ = ["convert_to_270"]


def convert_to_270(resources: ResourceSet, ctx: Any) -> str:
    partner = load_partner(os.environ.get("MAFHIR_X12_PARTNER", "default"))
    request = request_from_fhir(resources, "")  # every missing piece named first
    numbers = ControlNumbers(partner.control_location)
    try:
        control = numbers.allocate(f"{partner.sender_id}>{partner.receiver_id}")
    finally:
        numbers.close()
    request = replace(request, reference=f"MAFHIR{control:09d}")
    now = getattr(ctx, "now", None) or datetime.now(UTC)
    text = write_270(request, partner, control, now)
    validate_270(text)
    return text

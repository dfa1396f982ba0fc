"""What the MA reads at the front desk: active?, office copay, deductible left, coinsurance,
plan dates — the same few lines printed by ``mafhir eligibility check`` and kept on the
outbox item by ``mafhir sync --to x12:NAME``. No names or member ids (it is logged and
kept): the MA knows whom they asked about.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .read271 import Eligibility271

__all__ = ["summary", "summary_text"]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def summary(result: Eligibility271) -> dict[str, Any]:
    """The summary as JSON-ready values (amounts as exact strings, USD)."""
    out: dict[str, Any] = {
        "active": None if result.rejected else result.inforce,
        "plan": result.plan_name,
        "plan_start": result.period_start.isoformat() if result.period_start else None,
        "plan_end": result.period_end.isoformat() if result.period_end else None,
        "office_copay": _money(result.office_copay),
        "coinsurance_percent": (format((result.coinsurance * 100).normalize(), "f")
                                if result.coinsurance is not None else None),
        "deductible": _money(result.deductible),
        "deductible_remaining": _money(result.deductible_remaining),
        "out_of_pocket_remaining": _money(result.out_of_pocket_remaining),
        "messages": list(result.messages) + [f"not answered: {r}"
                                              for r in result.benefit_rejects],
        "corrections": [],
        "errors": [{"code": r.code, "meaning": r.meaning, "loop": r.loop,
                    "follow_up": r.follow_up} for r in result.rejects],
    }
    return out


def summary_text(data: dict[str, Any]) -> str:
    """The summary as the plain lines the MA reads."""
    if data.get("errors"):
        lines = ["NOT ANSWERED: " + "; ".join(f"{e['meaning']} (AAA {e['code']})"
                                              for e in data["errors"])]
        return "\n".join(lines) + "\n"
    active = data.get("active")
    lines = [f"Coverage: {'ACTIVE' if active else 'NOT ACTIVE' if active is False else 'unknown'}"
             + (f" ({data['plan']})" if data.get("plan") else "")]
    if data.get("plan_start") or data.get("plan_end"):
        lines.append(f"Plan dates: {data.get('plan_start') or '?'} to "
                     f"{data.get('plan_end') or '?'}")
    copay = data.get("office_copay")
    lines.append(f"Office visit copay: {'$' + copay if copay else 'not given'}")
    if data.get("deductible_remaining") is not None:
        total = f" of ${data['deductible']}" if data.get("deductible") else ""
        lines.append(f"Deductible left: ${data['deductible_remaining']}{total}")
    elif data.get("deductible"):
        lines.append(f"Deductible: ${data['deductible']} (remaining not given)")
    else:
        lines.append("Deductible: not given")
    percent = data.get("coinsurance_percent")
    lines.append(f"Coinsurance: {percent + ' %' if percent else 'not given'}")
    if data.get("out_of_pocket_remaining"):
        lines.append(f"Out of pocket left: ${data['out_of_pocket_remaining']}")
    for msg in data.get("messages") or []:
        lines.append(f"Payer note: {msg}")
    for c in data.get("corrections") or []:
        lines.append(f"Payer has a different {c['field']}: {c['action']}")
    return "\n".join(lines) + "\n"

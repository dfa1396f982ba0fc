"""A PATCH entry (a reminder's reply) against the real server (SEKMET), which takes no
conditional PATCH: the client reads the one match, applies the JSON Patch and writes it
back with If-Match; a version changed between the read and the write (412) is read
again; no match is refused not-found and nothing is written."""

from __future__ import annotations

import pytest

from mafhir.bundle import transaction, update
from mafhir.errors import InputError
from mafhir.patch import patch
from mafhir_fhir_rest.client import FhirClient


def appointment(system: str) -> dict:
    return {"resourceType": "Appointment", "identifier": [{"system": system, "value": "A-1"}],
            "status": "booked", "comment": "Bring the card",
            "start": "2030-06-10T09:30:00-05:00", "end": "2030-06-10T09:50:00-05:00",
            "participant": [{"actor": {"display": "Exam Room 1"}, "status": "accepted"}]}


def cancel(system: str) -> dict:
    return transaction([patch("Appointment", system, "A-1", [
        {"op": "test", "path": "/status", "value": "booked"},
        {"op": "replace", "path": "/status", "value": "cancelled"}])])


def stored(client: FhirClient, system: str) -> list[dict]:
    return list(client.search("Appointment", {"identifier": f"{system}|A-1"}))


def test_a_patch_changes_only_what_it_says(client: FhirClient, system: str):
    client.send(transaction([update(appointment(system))]))
    client.send(cancel(system))
    (after,) = stored(client, system)
    assert after["status"] == "cancelled"
    assert {k: v for k, v in after.items() if k not in ("status", "meta", "id")} == \
        {k: v for k, v in appointment(system).items() if k != "status"}
    assert after["meta"]["versionId"] == "2"


def test_a_change_between_read_and_write_is_read_again(client: FhirClient, system: str,
                                                       monkeypatch: pytest.MonkeyPatch):
    client.send(transaction([update(appointment(system))]))
    reads = []
    real = client._current

    def stale_once(rtype: str, query: str):
        found = real(rtype, query)
        assert found is not None
        reads.append(found[1])
        if len(reads) == 1:  # someone else wrote version 2 after our read of version 1
            client.send(transaction([update({**appointment(system), "comment": "Moved"})]))
        return found

    monkeypatch.setattr(client, "_current", stale_once)
    client.send(cancel(system))
    assert reads == ["1", "2"]  # the 412 made it read again
    (after,) = stored(client, system)
    assert (after["status"], after["comment"]) == ("cancelled", "Moved")


def test_no_match_is_refused_and_nothing_is_written(client: FhirClient, system: str):
    with pytest.raises(InputError) as caught:
        client.send(cancel(system))
    assert caught.value.problems[0].code == "not-found"
    assert stored(client, system) == []

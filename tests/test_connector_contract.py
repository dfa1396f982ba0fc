"""The declared connector contract (mafhir.registry.CAPABILITIES): the kit reports a
connector that declares a capability it lacks (or offers one it does not declare), the
built-in connectors keep theirs, and core uses a capability only when it is declared."""

from __future__ import annotations

from typing import Any

import pytest

from mafhir.errors import PluginError
from mafhir.outbox.delivery import connect
from mafhir.plugins import get_registry
from mafhir.registry import CAPABILITIES, ConnectorSpec, Registry, capabilities_of
from mafhir.testing import check_contract, connector_suite

NOWHERE = "127.0.0.1:9"  # the discard port: nothing is sent while building a connector


def _targets(tmp_path) -> dict[str, str]:
    return {"dir": str(tmp_path / "dir"), "local": str(tmp_path / "local.sqlite"),
            "mllp": f"{NOWHERE}/OML^O21", "fhir-rest": f"http://{NOWHERE}/fhir",
            "pharmacy-fhir": f"http://{NOWHERE}/fhir", "pharmacy-v2": NOWHERE,
            "iis": "nowhere",
            "x12": "contract",
            "messaging": str(tmp_path / "reminders.ndjson")}  # issue 18 part B


def test_every_registered_connector_keeps_its_declared_contract(tmp_path, monkeypatch):
    registry = get_registry()
    targets = _targets(tmp_path)
    # the iis connector reads its registry from mafhir.toml, its credentials from the env;
    # the x12 partner "contract" (plugins/…-x12-eligibility) is in the same file
    config = tmp_path / "mafhir.toml"
    config.write_text(f'[iis]\nfacility_id = "F"\n[iis.nowhere]\n'
                      f'transport = "mllp"\nmllp = "{NOWHERE}"\n'
                      f'[x12.contract]\nurl = "http://{NOWHERE}/core"\nsender_id = "C"\n'
                      'receiver_id = "R"\nprovider_npi = "1234567893"\nprovider_name = "M"\n'
                      f'control_db = "{tmp_path / "control.db"}"\n')
    monkeypatch.setenv("MAFHIR_CONFIG", str(config))
    assert set(registry.connectors) == set(targets)  # a new connector must be listed here
    declared = {}
    for name, spec in registry.connectors.items():
        connector = spec.factory(targets[name])
        try:
            assert check_contract(connector) == [], name
            declared[name] = capabilities_of(connector)
        finally:
            connector.close()
    # what each promises, by the docs (docs/connectors.md): v2 destinations take Bundles
    # whole and write for the clinic; FHIR servers read back and are configured by the outbox
    assert declared == {
        "dir": frozenset(), "local": frozenset(),
        "mllp": {"whole_bundles", "use_clinic", "configure"},
        "fhir-rest": {"configure", "search"},
        "pharmacy-fhir": {"use_clinic", "search"},
        "pharmacy-v2": {"whole_bundles", "use_clinic"},
        "iis": {"whole_bundles", "use_clinic", "configure"},
        "x12": {"whole_bundles", "configure"},
        # issue 18 part B: each Bundle's reminders go out whole; the webhook's timeout
        "messaging": {"whole_bundles", "configure"},
    }


class Broken:
    """Declares configure (missing), search (wrong arguments) and a name nobody knows;
    offers use_clinic and whole_bundles without declaring them."""

    capabilities = frozenset({"configure", "search", "teleport"})
    whole_bundles = True

    def send(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass

    def search(self) -> list[dict[str, Any]]:
        return []

    def use_clinic(self, clinic: Any) -> None:
        pass


def test_kit_reports_each_broken_promise_by_name():
    problems = check_contract(Broken())
    assert problems == [
        "capabilities: 'teleport' is not a known capability (known: configure, search, "
        "use_clinic, whole_bundles)",
        "configure: declared but missing; core calls configure(timeout=1.0, max_attempts=1)",
        "search: declared but cannot be called as search('Patient', dict): search()",
        "use_clinic: present but not declared in capabilities, so core never uses it",
        "whole_bundles: set as an attribute but not declared in capabilities, so the outbox "
        "sends entry by entry",
    ]
    assert sorted(CAPABILITIES) == ["configure", "search", "use_clinic", "whole_bundles"]


def test_kit_requires_send_and_close():
    class Half:
        send = None

    assert check_contract(Half()) == [
        "send: required but missing; core calls send(dict)",
        "close: required but missing; core calls close()",
    ]


def test_generated_suite_fails_a_connector_missing_a_declared_capability():
    suite = connector_suite(lambda url: Broken())()
    with pytest.raises(AssertionError, match="configure: declared but missing"):
        suite.test_declared_contract(Broken())


def test_the_outbox_configures_connectors_through_the_declared_capability():
    mllp = connect(f"mllp:{NOWHERE}/OML^O21", timeout=7.0)
    fhir = connect(f"http://{NOWHERE}/fhir", timeout=7.0)
    try:
        # MLLP: the ACK wait was a fixed 30 s, whatever `sync --timeout` said
        assert mllp.client.timeout == 7.0 and mllp.client.retry.max_attempts == 1
        assert fhir.client.timeout == (5.0, 7.0) and fhir.client.retry.max_attempts == 1
    finally:
        mllp.close()
        fhir.close()


def test_urls_go_to_the_connector_that_claims_the_scheme():
    registry = get_registry()
    assert registry.connector_for_scheme("https").name == "fhir-rest"
    assert registry.connector_for_scheme("http").name == "fhir-rest"
    assert registry.connector_for_scheme("mllp") is None  # mllp:HOST:PORT is a name
    own = Registry()
    own.add_connector(ConnectorSpec("ehr-a", dict, schemes=("https",)), "plugin-a")
    with pytest.raises(PluginError, match="connector 'ehr-b' claims https:// destinations, "
                                          "already claimed by connector 'ehr-a' of 'plugin-a'"):
        own.add_connector(ConnectorSpec("ehr-b", dict, schemes=("https",)), "plugin-b")

"""``mafhir.toml [iis]``: defaults and registries merged, secrets refused in the file, mistakes
named; and ``mafhir iis ping`` on a live stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_iis import CREDENTIALS_ENV, FACILITY, running_standin, write_config
from mafhir_iis.config import load_iis

from mafhir.cli.main import build_cli
from mafhir.errors import InputError


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mafhir.toml"
    path.write_text(text)
    return path


def test_registry_settings_win_over_the_clinic_defaults(tmp_path):
    path = toml(tmp_path, """
[iis]
facility_id = "CLINIC-1"
publicity = "02"
receiving_application = "DEFAULT"

[iis.state]
url = "https://iis.example.gov/soap"
receiving_application = "WIR"
password_env = "MY_PW"
""")
    config = load_iis("state", path)
    settings = config.settings()
    assert (settings.facility_id, settings.publicity, settings.receiving_application) == (
        "CLINIC-1", "02", "WIR")
    assert config.transport == "soap" and config.verify is True


def test_credentials_from_named_variables_or_the_default_names(tmp_path, monkeypatch):
    path = toml(tmp_path, """
[iis.state]
url = "https://iis.example.gov/soap"
username = "${A_USER}"
password_env = "A_PW"

[iis.north-dakota]
url = "https://nd.example.gov/soap"
""")
    monkeypatch.setenv("A_USER", "u")
    monkeypatch.setenv("A_PW", "p")
    creds = load_iis("state", path).credentials()
    assert (creds.username, creds.password) == ("u", "p")
    with pytest.raises(InputError) as info:
        load_iis("north-dakota", path).credentials()
    assert {p.location for p in info.value.problems} == {
        "IIS_NORTH_DAKOTA_USERNAME", "IIS_NORTH_DAKOTA_PASSWORD"}


def test_secrets_in_the_file_and_unknown_keys_are_refused_all_at_once(tmp_path):
    path = toml(tmp_path, """
[iis]
facility_id = "CLINIC-1"
password = "hunter2"

[iis.state]
url = "https://iis.example.gov/soap"
recieving_facility = "WIR"
username = "clinic"
""")
    with pytest.raises(InputError) as info:
        load_iis("state", path)
    found = {(p.location.split(": ")[1], p.code) for p in info.value.problems}
    assert found == {("iis.password", "security"), ("iis.state.username", "security"),
                     ("iis.state.recieving_facility", "structure")}
    assert "did you mean 'receiving_facility'" in str(info.value)
    assert "hunter2" not in str(info.value) and "clinic\"" not in str(info.value)


@pytest.mark.parametrize(("text", "where"), [
    ('[iis.state]\ntransport = "soap"\n', "iis.state.url"),
    ('[iis.state]\ntransport = "mllp"\nmllp = "no-port"\n', "iis.state.mllp"),
    ('[iis.state]\ntransport = "fax"\n', "iis.state.transport"),
    ('[iis.other]\nurl = "https://x.example"\n', "iis")])
def test_a_registry_that_cannot_work_is_named(tmp_path, text, where):
    with pytest.raises(InputError) as info:
        load_iis("state", toml(tmp_path, text))
    assert info.value.problems[0].location.split(": ")[1] == where


def test_ping_answers_from_a_live_registry_and_fails_75_on_a_dead_one(tmp_path, monkeypatch):
    for key, value in CREDENTIALS_ENV.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    with running_standin() as standin:
        soap = write_config(tmp_path / "soap.toml", standin)
        result = runner.invoke(build_cli(), ["iis", "ping", "state", "--config", str(soap)])
        assert result.exit_code == 0, result.output
        assert "connectivityTest answered ('mafhir ping')" in result.output
        mllp = write_config(tmp_path / "mllp.toml", standin, transport="mllp")
        result = runner.invoke(build_cli(), ["iis", "ping", "state", "--config", str(mllp)])
        assert result.exit_code == 0 and "accepts connections" in result.output
    dead = toml(tmp_path, f'[iis]\nfacility_id = "{FACILITY}"\n[iis.state]\n'
                          'url = "http://127.0.0.1:9/iis"\ntimeout = 2.0\n'
                          'username = "${IIS_TEST_USER}"\npassword = "${IIS_TEST_PASSWORD}"\n')
    result = runner.invoke(build_cli(), ["iis", "ping", "state", "--config", str(dead)])
    assert result.exit_code == 75 and "did not answer" in result.output
    result = runner.invoke(build_cli(), ["iis", "ping", "nope", "--config", str(dead)])
    assert result.exit_code == 2 and "no registry 'nope'" in result.output

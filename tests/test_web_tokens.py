"""Dashboard API tokens expire: a token past its expiry is refused with 401 and says so;
the lifetime is chosen per token (``mafhir users token NAME --days N``) with a default;
tokens made by an earlier release (no expiry kept) expire that default after they were
made. Expiry times are set in the database with sqlite3, not through mafhir."""

from __future__ import annotations

import sqlite3
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")

from starlette.testclient import TestClient

from mafhir.cli.main import build_cli
from mafhir.web.app import WebConfig, create_app
from mafhir.web.webstore import TOKEN_DAYS, WebStore
from web_helpers import PASSWORD, cheap_argon2  # noqa: F401 - an autouse fixture

DAY = 86400.0


def expiry_of(db: str, name: str) -> float:
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT expires_at FROM web_tokens WHERE name = ?",
                                (name,)).fetchone()
    return float(value)


def set_expiry(db: str, name: str, when: float | None) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE web_tokens SET expires_at = ? WHERE name = ?", (when, name))


def test_a_new_token_expires_after_the_default_or_the_days_asked(tmp_path):
    assert TOKEN_DAYS == 90
    db = str(tmp_path / "web.db")
    store = WebStore(db)
    try:
        store.add_user("ops", "operator", PASSWORD)
        store.add_user("mon", "viewer", PASSWORD)
        before = time.time()
        store.new_token("ops")
        store.new_token("mon", days=7)
        after = time.time()
        assert before + 90 * DAY <= expiry_of(db, "ops") <= after + 90 * DAY
        assert before + 7 * DAY <= expiry_of(db, "mon") <= after + 7 * DAY
    finally:
        store.close()


def test_the_api_refuses_an_expired_token_with_401_and_a_clear_message(tmp_path):
    db = str(tmp_path / "web.db")
    store = WebStore(db)
    store.add_user("ops", "operator", PASSWORD)
    token = store.new_token("ops")
    app = create_app(WebConfig(db=db))
    try:
        client = TestClient(app, base_url="http://127.0.0.1")
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/status", headers=headers).status_code == 200
        set_expiry(db, "ops", time.time() - 60)
        answer = client.get("/api/status", headers=headers)
        assert answer.status_code == 401
        (problem,) = answer.json()["error"]["problems"]
        assert problem["location"] == "Authorization"
        assert problem["code"] == "expired"
        assert "expired" in problem["message"] and "mafhir users token" in problem["message"]
        assert token not in answer.text
        wrong = client.get("/api/status", headers={"Authorization": "Bearer mfh_wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["problems"][0]["code"] == \
            "login"
    finally:
        app.state.dashboard.close()
        store.close()


def test_a_token_without_an_expiry_expires_the_default_after_it_was_made(tmp_path):
    """A row as an earlier release wrote it: no expiry; it lasts TOKEN_DAYS from creation."""
    db = str(tmp_path / "web.db")
    store = WebStore(db)
    try:
        store.add_user("ops", "operator", PASSWORD)
        token = store.new_token("ops")
        set_expiry(db, "ops", None)
        assert store.token_user(token).name == "ops"
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE web_tokens SET created_at = ?",
                         (time.time() - 91 * DAY,))
        assert store.token_user(token) is None
        assert store.token_expired(token)
    finally:
        store.close()


def test_a_store_of_the_previous_release_gets_the_expiry_column(tmp_path):
    db = str(tmp_path / "old.db")
    with sqlite3.connect(db) as conn:  # the previous release's table, verbatim
        conn.execute("CREATE TABLE web_tokens (id INTEGER NOT NULL PRIMARY KEY, "
                     "name VARCHAR(64) NOT NULL, token_sha256 VARCHAR(64) NOT NULL UNIQUE, "
                     "created_at FLOAT NOT NULL)")
    store = WebStore(db)
    try:
        store.add_user("ops", "operator", PASSWORD)
        token = store.new_token("ops", days=1)
        assert store.token_user(token).name == "ops"
        assert expiry_of(db, "ops") > time.time()
    finally:
        store.close()


def test_the_cli_takes_days_and_says_when_the_token_expires(tmp_path, monkeypatch):
    db = str(tmp_path / "web.db")
    monkeypatch.setenv("MAFHIR_USER_PASSWORD", PASSWORD)
    runner = CliRunner()
    assert runner.invoke(build_cli(), ["users", "add", "eve", "--role", "viewer",
                                       "--db", db]).exit_code == 0
    made = runner.invoke(build_cli(), ["users", "token", "eve", "--days", "30", "--db", db])
    assert made.exit_code == 0, made.output
    assert made.stdout.strip().startswith("mfh_") and "\n" not in made.stdout.strip()
    assert "expires" in made.stderr
    assert time.time() + 29 * DAY < expiry_of(db, "eve") <= time.time() + 30 * DAY
    refused = runner.invoke(build_cli(), ["users", "token", "eve", "--days", "0", "--db", db])
    assert refused.exit_code == 2 and "--days" in refused.output

"""The dashboard's JSON API against its own OpenAPI document, with schemathesis: every
operation, generated inputs (few examples per operation, to stay quick), and every check
schemathesis has — no 500 on any input, status codes, content types and bodies as the
document says, auth that is not ignored."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from mafhir.outbox import open_store  # noqa: E402
from mafhir.web.openapi import document  # noqa: E402
from web_helpers import PASSWORD, cheap_argon2, seed_outbox  # noqa: E402,F401

#: Every operation of the document (schemathesis's pytest loader from a fixture does not
#: run under pytest 9, so each operation's strategy is driven by hypothesis here).
OPERATIONS = [(path, method.upper()) for path, ops in document()["paths"].items()
              for method in ops]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The app over a seeded outbox (delivered, dead and pending items) loaded by
    schemathesis; an operator's token, so that replay and discard are tried for real."""
    from mafhir.web.app import WebConfig, create_app
    from mafhir.web.webstore import WebStore

    tmp = tmp_path_factory.mktemp("api")
    db = str(tmp / "outbox.db")
    store = open_store(db)
    seed_outbox(store, tmp, n=8, dead=3)
    users = WebStore(db)
    users.add_user("ops", "operator", PASSWORD)
    token = users.new_token("ops")
    app = create_app(WebConfig(db=db))
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app), token
    app.state.dashboard.close()
    users.close()
    store.close()


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_api_keeps_to_its_openapi_document(api, path, method):
    schema, token = api
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"})

    check()

"""The OpenAPI 3.0 document of ``/api`` (served at ``/api/openapi.json``), written out so
that it says exactly what the API answers — the schemathesis tests hold it to that."""

from __future__ import annotations

from typing import Any

from .. import __version__
from .views import ITEM_STATES

__all__ = ["document"]

JSON = dict[str, Any]


def _nullable(kind: str, **extra: Any) -> JSON:
    return {"type": kind, "nullable": True, **extra}


_SERIES = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_ITEM = {
    "type": "object",
    "required": ["id", "destination", "kind", "state", "attempts", "patient_key", "created",
                 "updated", "next_try", "error_code", "http_status"],
    "properties": {
        "id": {"type": "integer"}, "destination": {"type": "string"},
        "kind": {"type": "string"}, "state": {"type": "string", "enum": list(ITEM_STATES)},
        "attempts": {"type": "integer"},
        "patient_key": {"type": "string", "description": "a hash of the patient's "
                                                         "identity, not the MRN"},
        "created": _nullable("string", format="date-time"),
        "updated": _nullable("string", format="date-time"),
        "next_try": _nullable("string", format="date-time"),
        "error_code": _nullable("string", description="docs/errors.md"),
        "http_status": _nullable("integer"),
    },
}
_ITEM_DETAIL = {"allOf": [_ITEM, {"type": "object", "required": ["attempts_made"],
                                  "properties": {
                                      "source": {"type": "string"},
                                      "outcome": _nullable("object"),
                                      "attempts_made": {"type": "array", "items": {
                                          "type": "object"}}}}]}
_PAGE = {"type": "object", "required": ["total", "items"],
         "properties": {"total": {"type": "integer", "minimum": 0},
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/"
                                                                     "Item"}}}}
_DESTINATION = {
    "type": "object",
    "required": ["destination", "sent", "pending", "retrying", "dead", "discarded",
                 "last_success", "last_error", "hour", "day"],
    "properties": {"destination": {"type": "string"}, "sent": {"type": "integer"},
                   "pending": {"type": "integer"}, "retrying": {"type": "integer"},
                   "dead": {"type": "integer"}, "discarded": {"type": "integer"},
                   "last_success": _nullable("string", format="date-time"),
                   "last_error": _nullable("string", format="date-time"),
                   "hour": _SERIES, "day": _SERIES},
}
_STATUS = {
    "type": "object", "required": ["destinations", "quarantined", "senders", "at"],
    "properties": {"destinations": {"type": "array", "items": _DESTINATION},
                   "quarantined": {"type": "integer"},
                   "senders": _nullable("array", items={"type": "object"}),
                   "at": {"type": "string", "format": "date-time"}},
}
_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["status", "problems"],
                             "properties": {"status": {"type": "integer"},
                                            "problems": {"type": "array", "items": {
                                                "type": "object",
                                                "required": ["location", "message", "code"],
                                                "properties": {
                                                    "location": {"type": "string"},
                                                    "message": {"type": "string"},
                                                    "code": {"type": "string"}}}}}}},
}


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _answers(ok: JSON, *errors: int) -> JSON:
    out: JSON = {"200": {"description": "OK", "content": {"application/json": {
        "schema": ok}}}}
    for status in (401, *errors):
        out[str(status)] = {"description": {400: "bad parameter (each named)",
                                            401: "no, unknown or expired token",
                                            403: "the token's user lacks the role",
                                            404: "no such item",
                                            409: "not a dead letter",
                                            413: "body too large"}[status],
                            "content": {"application/json": {"schema": _ref("Error")}}}
    return out


def _q(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_FILTERS = [
    _q("state", {"type": "string", "enum": list(ITEM_STATES)}, "the item's state"),
    _q("destination", {"type": "string", "maxLength": 500}, "the destination, exactly"),
    _q("kind", {"type": "string", "maxLength": 64}, "the task kind"),
    _q("patient_key", {"type": "string", "pattern": "^[0-9a-f]{1,128}$"},
       "the patient key shown with each item"),
    _q("since", {"type": "string", "format": "date-time"}, "created at or after"),
    _q("until", {"type": "string", "format": "date-time"}, "created before"),
]
_PAGING = [_q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
           _q("offset", {"type": "integer", "minimum": 0, "maximum": 10**9},
              "items to skip")]
_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def document() -> JSON:
    """The OpenAPI document (a fresh dict each call)."""
    secured: list[JSON] = [{"token": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "mafhir dashboard API", "version": __version__,
                 "description": "The outbox's status, items and dead letters; replay and "
                                "discard. Patient data is never in these answers."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": "mafhir users token NAME"}},
            "schemas": {"Item": _ITEM, "ItemDetail": _ITEM_DETAIL, "Page": _PAGE,
                        "Status": _STATUS, "Error": _ERROR},
        },
        "security": secured,
        "paths": {
            "/api/status": {"get": {
                "summary": "per destination and sender: counts, last success and error, "
                           "throughput", "operationId": "status",
                "responses": _answers(_ref("Status"))}},
            "/api/items": {"get": {
                "summary": "outbox items, newest first", "operationId": "items",
                "parameters": _FILTERS + _PAGING, "responses": _answers(_ref("Page"), 400)}},
            "/api/items/{id}": {"get": {
                "summary": "one item with its attempts", "operationId": "item",
                "parameters": [_ID], "responses": _answers(_ref("ItemDetail"), 400, 404)}},
            "/api/dead-letters": {"get": {
                "summary": "dead letters, newest first", "operationId": "deadLetters",
                "parameters": _FILTERS[1:] + _PAGING,
                "responses": _answers(_ref("Page"), 400)}},
            "/api/dead-letters/{id}/replay": {"post": {
                "summary": "put a dead letter back in line (operator)",
                "operationId": "replay", "parameters": [_ID],
                "responses": _answers(_done(), 400, 403, 409, 413)}},
            "/api/dead-letters/{id}/discard": {"post": {
                "summary": "set a dead letter aside with the reason (operator)",
                "operationId": "discard", "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["reason"],
                               "properties": {"reason": {"type": "string", "minLength": 1,
                                                         "maxLength": 1000}}}}}},
                "responses": _answers(_done(), 400, 403, 409, 413)}},
        },
    }


def _done() -> JSON:
    return {"type": "object", "required": ["id", "done"],
            "properties": {"id": {"type": "integer"},
                           "done": {"type": "string", "enum": ["replay", "discard"]}}}

"""The OpenAPI document: request and response models, the event schema and the API-key security scheme, so
``/docs`` "Try it out" and "Authorize" work.

Request bodies are read by hand (:func:`bastion.web.api.json_body`: body limits, a clear 4xx for every bad
body), so FastAPI cannot infer them; each JSON POST declares its body with ``openapi_extra`` (the routes in
:mod:`bastion.web.api`) or in :data:`REQUEST_BODIES` (routes mounted from other modules). The canonical event
schema comes from the msgspec types (:mod:`bastion.events.model`), the same source as docs/events.schema.json.

Every operation outside :data:`PUBLIC_PATHS` carries the security requirement "API key in ``X-API-Key``, or
``Authorization: Bearer``" - the two ways :func:`bastion.web.security.principal_of` reads a key. (The
reviewer UI's session cookie and CSRF token are for the browser UI, not part of the documented API.)
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from bastion.events.model import Event
from bastion.review.service import ACTIONS, POLICIES, VERDICTS

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "An API key (`bastion keys add`), sent as `X-API-Key: bst_...`."},
    "BearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "The same API key, sent as `Authorization: Bearer bst_...`."},
}
SECURITY: list[dict[str, list[str]]] = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
EVENT_REF = {"$ref": "#/components/schemas/Event"}
EXAMPLE_EVENT: dict[str, Any] = {
    "id": "example-e1", "type": "post.create", "ts": "2026-11-21T09:00:00Z", "actor": "u1",
    "post": {"id": "example-p1", "text": "hello from the API docs"}}


# -- models ----------------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    detail: Any = Field(description="what was wrong with the request")


class IngestError(BaseModel):
    index: int = Field(description="position of the event in the batch")
    id: str | None = Field(description="the event's id, when it had one")
    error: str


class IngestResult(BaseModel):
    accepted: int = Field(description="events processed")
    duplicates: int = Field(description="events whose id was seen before (not processed again)")
    rejected: int = Field(description="events refused; see errors")
    actions: int = Field(description="actions applied by the accepted events")
    errors: list[IngestError]


class CheckResult(BaseModel):
    verdict: str = Field(description="the strongest enforced action, or allow",
                         examples=["allow", "account.suspend", "post.hide", "review.enqueue"])
    effects: list[dict[str, Any]] = Field(description="every effect that would apply, shadow ones included")
    reasons: list[str]
    scores: dict[str, float] = Field(description="model scores read while evaluating")
    latency_ms: float


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    events: int
    review_ranking: str


class DecisionRequest(BaseModel):
    """A reviewer's decision on a case (``POST /v1/cases/{case_id}/decision``)."""

    verdict: Literal[VERDICTS]  # type: ignore[valid-type]
    policy: Literal[POLICIES]  # type: ignore[valid-type]
    action: Literal[ACTIONS] = "none"  # type: ignore[valid-type]
    note: str = Field("", max_length=1000)

    model_config = {"json_schema_extra": {"examples": [
        {"verdict": "violating", "policy": "spam", "action": "label", "note": "seen before"}]}}


class ClaimRequest(BaseModel):
    """Claim the next case or appeal (``POST /v1/review/claim``); the body is optional."""

    queue: str | None = Field(None, description="only this queue (default: every queue you may decide)")

    model_config = {"json_schema_extra": {"examples": [{"queue": "spam"}]}}


class AppealSubject(BaseModel):
    kind: Literal["account", "post"]
    id: str = Field(min_length=1, max_length=200)


class AppealRequest(BaseModel):
    """An appeal the platform forwards against an enforcement (``POST /v1/appeals``)."""

    subject: AppealSubject
    appellant: str = Field("", max_length=200)
    text: str = Field("", max_length=5000, description="the appellant's statement")
    statement: str = Field("", max_length=100, description="the statement-of-reasons id appealed, if known")

    model_config = {"json_schema_extra": {"examples": [
        {"subject": {"kind": "account", "id": "u1"}, "appellant": "u1", "text": "I am not a bot"}]}}


class AppealDecisionRequest(BaseModel):
    """Uphold or reject an appeal (``POST /v1/appeals/{appeal_id}/decision``)."""

    outcome: Literal["upheld", "rejected"]
    note: str = Field("", max_length=1000)

    model_config = {"json_schema_extra": {"examples": [{"outcome": "upheld", "note": "not a bot"}]}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDetail, "description": "the body is empty or not JSON"},
    413: {"model": ErrorDetail, "description": "the body or batch is over the limit"},
    422: {"model": ErrorDetail, "description": "the body is JSON but not what this route takes"},
}


def json_request_body(schema: dict[str, Any], example: Any, description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema, "example": example}}}}


INGEST_BODY = json_request_body(
    {"anyOf": [{"type": "object", "title": "Batch", "required": ["events"],
                "properties": {"events": {"type": "array", "items": EVENT_REF, "maxItems": 10_000}}},
               {"type": "array", "items": EVENT_REF, "maxItems": 10_000, "title": "Array"},
               EVENT_REF]},
    {"events": [EXAMPLE_EVENT]},
    "Canonical events v1 (docs/events.md): `{\"events\": [...]}`, an array, or one event; at most 10,000 "
    "events and 32 MiB.")
CHECK_BODY = json_request_body(EVENT_REF, EXAMPLE_EVENT, "One canonical event (docs/events.md).")
# (method, path) -> request body, for JSON routes declared outside bastion.web.api
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/cases/{case_id}/decision"): json_request_body(
        {"$ref": "#/components/schemas/DecisionRequest"},
        DecisionRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
        "The decision; `verdict` and `policy` are required.")["requestBody"],
    ("POST", "/v1/review/claim"): {**json_request_body(
        {"$ref": "#/components/schemas/ClaimRequest"}, {"queue": "spam"},
        "Optional: `{\"queue\": NAME}` to claim from one queue.")["requestBody"], "required": False},
    ("POST", "/v1/appeals"): json_request_body(
        {"$ref": "#/components/schemas/AppealRequest"},
        AppealRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
        "The appeal; `subject` is required.")["requestBody"],
    ("POST", "/v1/appeals/{appeal_id}/decision"): json_request_body(
        {"$ref": "#/components/schemas/AppealDecisionRequest"}, {"outcome": "upheld", "note": "not a bot"},
        "The outcome of the appeal.")["requestBody"],
}
EXTRA_MODELS: tuple[type[BaseModel], ...] = (DecisionRequest, ClaimRequest, AppealRequest, AppealDecisionRequest)


def _event_components() -> dict[str, Any]:
    (top,), components = msgspec.json.schema_components([Event], ref_template="#/components/schemas/{name}")
    top = dict(top)
    top["description"] = "A canonical event v1; unknown `type` values are kept as generic events."
    return {"Event": top, **components}


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (built once, on the first request for it)."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    extra = _event_components()
    for model in EXTRA_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        extra.update(schema.pop("$defs", {}))   # nested models become components of their own
        extra[model.__name__] = schema
    for name, schema in extra.items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(f"OpenAPI component {name!r} is defined twice")
        schemas[name] = schema
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            body = REQUEST_BODIES.get((method.upper(), path))
            if body is not None and "requestBody" not in op:
                op["requestBody"] = body
            if path in PUBLIC_PATHS:
                continue
            op["security"] = SECURITY
            responses = op.setdefault("responses", {})
            responses.setdefault("401", {"description": "no API key, or an invalid or revoked one",
                                         "content": {"application/json": {"schema": {
                                             "$ref": "#/components/schemas/ErrorDetail"}}}})
            responses.setdefault("403", {"description": "the key's role may not do this",
                                         "content": {"application/json": {"schema": {
                                             "$ref": "#/components/schemas/ErrorDetail"}}}})
    if "ErrorDetail" not in schemas:
        schemas["ErrorDetail"] = ErrorDetail.model_json_schema()
    return doc


def install(app: FastAPI) -> None:
    """Serve :func:`document` as the app's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

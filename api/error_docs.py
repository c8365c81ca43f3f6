"""The error responses in the OpenAPI schema, told as they are answered.

FastAPI documents every operation's 422 as its own `HTTPValidationError`
(`{"detail": [...]}`) and knows nothing of the statuses middleware and dependencies answer.
Every error here is a `Problem` (`{"message", "detail"}`, see `api.errors`), and any
operation can meet: 401/403/429 (API key, when the operation needs one), 413/415 (request
guard, when it takes a body) and 503 (storage or messaging down). Generated clients and
schema-driven tests should see exactly that.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.schemas import Problem

REF_PREFIX = "#/components/schemas/"
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
}

# status -> (description, when it applies, headers)
KEYED = "keyed"
BODY = "body"
JSON_BODY = "json body"
ANY = "any"
ERRORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "401": ("No API key, or an unknown or revoked one.", KEYED, {}),
    "403": ("The API key lacks this operation's scope.", KEYED, {}),
    "429": ("The API key's rate limit is reached; retry after Retry-After.", KEYED, RETRY_AFTER),
    "413": ("The body is over the size limit (docs/limits.md).", BODY, {}),
    "415": ("The body is not JSON.", JSON_BODY, {}),
    "503": ("Storage or messaging is unavailable; retry after Retry-After.", ANY, RETRY_AFTER),
}
# Operations that touch neither AWS nor a body: nothing of the above can happen to them.
STATIC_PATHS = frozenset({"/"})
BODY_METHODS = frozenset({"post", "put", "patch"})  # what `api.guards.RequestGuard` checks
FORM_PREFIXES = ("/webhooks/",)  # bodies the guard leaves to the route (signed forms)


def _applies(when: str, path: str, method: str, operation: dict[str, Any]) -> bool:
    if when == KEYED:
        return bool(operation.get("security"))
    if when == BODY:
        return method in BODY_METHODS
    if when == JSON_BODY:
        return method in BODY_METHODS and not path.startswith(FORM_PREFIXES)
    return path not in STATIC_PATHS


def rewrite(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every error response a `Problem`; changes `schema` in place."""
    problem = {"application/json": {"schema": {"$ref": f"{REF_PREFIX}Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"]["content"] = problem
            for status, (description, when, headers) in ERRORS.items():
                if not _applies(when, path, method, operation):
                    continue
                response = responses.setdefault(
                    status, {"description": description, "content": problem}
                )
                if headers:
                    response.setdefault("headers", headers)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema(ref_template=REF_PREFIX + "{model}"))
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    return schema


def document_errors(app: FastAPI) -> None:
    """Have `app.openapi()` return the rewritten schema (built once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app.state, "errors_documented", False):
            app.openapi_schema = rewrite(generate())
            app.state.errors_documented = True
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]

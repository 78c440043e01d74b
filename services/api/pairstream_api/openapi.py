"""OpenAPI details the routes share: operation ids, response links, the key schemes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    """A route's operationId: its function's name (``create_rule``), stable and short for
    clients generated from the document and for the links between operations."""
    return route.name


def links(status: int, source: str, *targets: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` linking the ``status`` response to ``targets`` (operation ids)
    with one parameter filled from it: ``source`` is ``param=$response.body#/pointer``."""
    parameter, expression = source.split("=", 1)
    return {
        status: {
            "links": {
                target: {"operationId": target, "parameters": {parameter: expression}}
                for target in targets
            }
        }
    }


SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer",
                   "description": "`Authorization: Bearer ps_…`"},
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "`X-API-Key: ps_…`"},
}  # fmt: skip


def document_security(app: FastAPI, prefix: str) -> None:
    """Declare both key schemes on every operation under ``prefix`` (each checks a key:
    ``deps.read_access`` or ``write_access``, which read the headers themselves, so one
    dependency per request instead of three; a test holds every such route to a 401)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema["paths"].items():
            if path.startswith(prefix + "/"):
                for operation in operations.values():
                    operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

"""OpenAPI details the routes share: operation ids and response links."""

from __future__ import annotations

from typing import Any

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

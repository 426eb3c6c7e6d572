"""The OpenAPI document's building blocks: a model's schema reference, JSON and error responses, query
parameters, the path parameters and status sets most operations share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.contract.batches import ErrorBody


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input; the message names the field", 401: "no or bad credentials",
            403: "not allowed", 404: "no such batch", 409: "conflict", 413: "too large",
            429: "rate limited (see Retry-After)", 503: "database unavailable (see Retry-After)"}
    return {str(c): _json(ErrorBody, text[c]) for c in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


BATCH_ID = {"name": "batchId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
            "description": "the batch id (a UUID)"}
OFFSET = {"type": "integer", "minimum": 0, "maximum": 2**31}
COMMON = (400, 401, 403, 503)

"""JSON responses from the API models, serialized by pydantic's Rust core (no dict round trip)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel


def model_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=model.model_dump_json(by_alias=True), status=status, headers=headers,
                        content_type="application/json")

"""Request bodies and paging shared by the handlers: one way to read JSON into a model, one page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pydantic_core
from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from gateway.api.params import MAX_PAGE, int_param
from gateway.contract.batches import validation_message
from gateway.errors import BadRequest
from gateway.keys import SETTINGS

M = TypeVar("M", bound=BaseModel)
MAX_JSON_DEPTH = 200  # pydantic-core's parser limit


@contextlib.contextmanager
def multipart_framing() -> Iterator[None]:
    """aiohttp's multipart reader says that a body breaks the multipart framing (no starting boundary, a body
    that ends inside a part, reading past its end) with ValueError: that is the client's fault, a 400."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:  # RuntimeError: an unknown Content-Transfer-Encoding
        raise BadRequest(f"multipart: {exc}") from None


async def part_chunks(part: BodyPartReader, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """A multipart part's bytes as they arrive, a broken framing a 400."""
    while True:
        with multipart_framing():
            chunk = await part.read_chunk(size)
        if not chunk:
            return
        yield chunk


async def read_body(request: web.Request) -> bytes:
    """The raw body, at most the configured size (a 400 beyond it)."""
    raw = await request.read()
    if len(raw) > request.app[SETTINGS].security.max_body_bytes:
        raise BadRequest("body: too large")
    return raw


def validate_body(raw: bytes, model: type[M], load: Callable[[bytes], Any] | None = None) -> M:
    """A body as `model`, read by `load` (default: load_json; empty reads as null); a bad field is a 400
    naming it."""
    try:
        return model.model_validate((load or load_json)(raw or b"null"))
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from None


async def parse_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The JSON body as `model`; bad JSON or a bad field is a 400 naming it. Empty is allowed if optional."""
    raw = await read_body(request)
    if optional and not raw.strip():
        return model()
    return parse_json(raw, model)


def load_json(raw: bytes | str, field: str = "body") -> Any:
    """JSON text as Python values, nested at most MAX_JSON_DEPTH deep: anything else is a 400 naming the field.

    The parser (pydantic-core's) stops at its depth limit instead of recursing until the interpreter gives
    up, so a body of ten thousand brackets is a bad request, not a crash; the bound also protects the code
    that walks a request afterwards (a job's nodes, variable substitution)."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        text = str(exc)
        if "recursion limit" in text:
            raise BadRequest(f"{field}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
        raise BadRequest(f"{field}: invalid JSON ({text})") from None


def parse_json(raw: bytes | str, model: type[M], field: str = "body", context: dict[str, Any] | None = None) -> M:
    """A JSON object as `model`: invalid JSON, another JSON type or a bad field is a 400 naming it. `context`
    goes to the model's validators (BATCH_TYPES: the batch types this gateway's engines offer)."""
    data = load_json(raw, field)
    if not isinstance(data, dict):
        raise BadRequest(f"{field}: must be a JSON object")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from None


def page(request: web.Request) -> tuple[int, int]:
    """`from` and `size` of a list request."""
    return (int_param(request.query, "from", 0, minimum=0, maximum=2**31),
            int_param(request.query, "size", 100, minimum=1, maximum=MAX_PAGE))

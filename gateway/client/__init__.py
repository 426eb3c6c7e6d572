"""The batchgate Python client: `Client` (blocking) and `AsyncClient` (asyncio), over the whole API,
typed with the gateway's own pydantic models. See docs/client.md.

    from gateway.client import Client

    with Client("http://127.0.0.1:10099", user="alice", password="...") as bg:
        batch = bg.submit({"batchType": "LOCAL", "resource": "python3", "args": ["-c", "print(42)"]})
        for line in bg.follow_log(batch.id):
            print(line.number, line.text)
"""

from gateway.client.aio import DEFAULT_URL, AsyncClient
from gateway.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    GatewayUnreachable,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from gateway.client.streams import BatchChange, BatchEvents, LogFollow, LogLine, RunEvent, RunEvents
from gateway.client.sync import Client, SyncLogFollow, SyncRunEvents
from gateway.contract.batches import Batch, BatchDetails, BatchList, BatchRequest, CloseBatchResponse, LocalLog

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "BatchChange",
    "BatchDetails",
    "BatchEvents",
    "BatchList",
    "BatchRequest",
    "Client",
    "ClientError",
    "CloseBatchResponse",
    "Conflict",
    "Forbidden",
    "GatewayUnreachable",
    "LocalLog",
    "LogFollow",
    "LogLine",
    "NotFound",
    "RateLimited",
    "RunEvent",
    "RunEvents",
    "ServerError",
    "SyncLogFollow",
    "SyncRunEvents",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]

"""The wire models of GET /api/v1/engines: the engines a gateway has, and the batch types it offers."""

from __future__ import annotations

from pydantic import Field

from gateway.contract.batches import ApiModel


class EngineOut(ApiModel):
    name: str = Field(description="the engine plug-in's name (its settings are BATCHGATE_<NAME>_*)")
    batch_types: list[str] = Field(alias="batchTypes", description="the batch types it runs")
    enabled: list[str] = Field(description="those of its batch types this gateway accepts")


class EngineList(ApiModel):
    engines: list[EngineOut]
    batch_types: list[str] = Field(alias="batchTypes", description="every batch type this gateway accepts")

"""FLINK and PYFLINK as a plug-in: the Flink engine's settings (BATCHGATE_FLINK_*) and its factory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.base import EngineContext, csv_list
from engines.flink import FlinkEngine


class FlinkSettings(BaseSettings):
    """The Flink home (default: pyflink's); the target of a batch whose conf names none
    (execution.target); the session cluster's REST address (host:port) for target remote; how the
    cluster REST API is polled (docs/engines/flink.md)."""

    model_config = SettingsConfigDict(extra="ignore")

    home: Path | None = None
    target: str = Field(default="local", pattern="^(local|remote|yarn-application|kubernetes-application)$")
    jobmanager: str | None = Field(default=None, pattern=r"^[^\s:/]+:\d{1,5}$")
    poll_min_seconds: float = Field(default=0.25, gt=0, le=4.0)
    poll_max_seconds: float = Field(default=2.0, gt=0, le=4.5)
    lost_after_seconds: float = Field(default=300.0, gt=0)
    # The YARN ResourceManager's web addresses for yarn-application and yarn-session batches (RM HA:
    # several, comma-separated); default: yarn-site.xml in YARN_CONF_DIR / HADOOP_CONF_DIR.
    yarn_rm_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _lists = field_validator("yarn_rm_urls", mode="before")(csv_list)


class FlinkPlugin:
    name = "flink"
    batch_types = FlinkEngine.batch_types
    settings = FlinkSettings
    enabled_with_users = True

    def create(self, settings: FlinkSettings, context: EngineContext) -> FlinkEngine:
        return FlinkEngine(
            context.processes, home=settings.home, default_target=settings.target,
            default_jobmanager=settings.jobmanager, poll_fastest=settings.poll_min_seconds,
            poll_slowest=settings.poll_max_seconds, lost_after=settings.lost_after_seconds,
            kill_grace=context.kill_grace, yarn_rm_urls=tuple(settings.yarn_rm_urls),
        )


PLUGIN = FlinkPlugin()

"""SPARK and PYSPARK as a plug-in: the Spark engine's settings (BATCHGATE_SPARK_*) and its factory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.base import EngineContext, csv_list
from engines.spark import SparkConfig, SparkEngine


class SparkSettings(BaseSettings):
    """docs/engines/spark.md: the Spark home (default: pyspark's) and default master; the masters a batch
    may pick with conf spark.master (prefixes; empty: any); standalone masters' web UIs, as JSON
    {"spark://h:7077": "http://h:8080"} or "spark://h:7077=http://h:8080;..." (default: port 8080 on the
    master's host); the standalone REST submission port; YARN ResourceManager web addresses (default:
    yarn-site.xml); Kubernetes credentials for cluster mode (default: the pod's service account); how
    cluster APIs are polled."""

    model_config = SettingsConfigDict(extra="ignore")

    home: Path | None = None
    master: str = "local[*]"
    allowed_masters: Annotated[list[str], NoDecode] = Field(default_factory=list)
    master_web_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    rest_port: int = Field(default=6066, ge=1, le=65535)
    yarn_rm_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    k8s_namespace: str = "default"
    k8s_token_file: Path | None = None
    k8s_ca_file: Path | None = None
    poll_min_seconds: float = Field(default=0.25, gt=0, le=4.0)
    poll_max_seconds: float = Field(default=2.0, gt=0, le=4.5)
    lost_after_seconds: float = Field(default=120.0, gt=0)
    # Who submits cluster-mode applications to YARN: a spark-submit process per batch, or one long-lived
    # JVM (jvm) that runs several submissions at once, with the process as its fallback.
    launcher: str = Field(default="process", pattern="^(process|jvm)$")
    launcher_parallel: int = Field(default=4, ge=1, le=64)

    _lists = field_validator("allowed_masters", "yarn_rm_urls", mode="before")(csv_list)

    @field_validator("master_web_urls", mode="before")
    @classmethod
    def _web_urls(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("{"):
                return json.loads(value)
            pairs = [p.split("=", 1) for p in value.split(";") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("expected spark://host:port=http://host:port;... or a JSON object")
            return {k.strip().rstrip("/"): v.strip() for k, v in pairs}
        return value


class SparkPlugin:
    name = "spark"
    batch_types = SparkEngine.batch_types
    settings = SparkSettings
    enabled_with_users = True

    def create(self, settings: SparkSettings, context: EngineContext) -> SparkEngine:
        return SparkEngine(context.processes, SparkConfig(
            spark_home=settings.home, default_master=settings.master, allowed_masters=tuple(settings.allowed_masters),
            master_web_urls=settings.master_web_urls, rest_port=settings.rest_port,
            yarn_rm_urls=tuple(settings.yarn_rm_urls), k8s_namespace=settings.k8s_namespace,
            k8s_token_file=settings.k8s_token_file, k8s_ca_file=settings.k8s_ca_file,
            poll_min=settings.poll_min_seconds, poll_max=settings.poll_max_seconds,
            lost_after=settings.lost_after_seconds, kill_grace=context.kill_grace, launcher=settings.launcher,
            launcher_dir=context.data_dir / "spark-launcher" if context.data_dir else None,
            launcher_parallel=settings.launcher_parallel,
        ))


PLUGIN = SparkPlugin()

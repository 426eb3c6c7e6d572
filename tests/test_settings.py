"""Grouped settings: every field has one group, is read from BATCHGATE_<FIELD> whatever its group, and
can be given by its flat name (as the CLI flags and the tests do); a flag beats the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import EngineSettings, InstanceSettings, QueueSettings, Settings


def test_each_field_has_one_group() -> None:
    seen: dict[str, str] = {}
    for group, model in Settings.GROUPS.items():
        for field in model.model_fields:
            assert field not in seen, f"{field} is in both {seen[field]} and {group}"
            seen[field] = group
    assert len(seen) > 40


def test_flat_names_reach_their_groups(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=1234, max_running=3, admin=["ann"], smtp_host="mail",
                        spark_master="yarn", database_url="postgresql://db/x", schedule_queue_limit=7)
    assert (settings.instance.port, settings.instance.data_dir) == (1234, tmp_path)
    assert settings.queue.max_running == 3
    assert settings.security.admin == ["ann"]
    assert settings.schedules.smtp_host == "mail" and settings.schedules.schedule_queue_limit == 7
    assert settings.engine_settings["spark"].master == "yarn", "an engine's flat names reach its plug-in"
    assert settings.database.database_url == "postgresql://db/x"


def test_every_group_reads_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHGATE_MAX_RUNNING", "7")
    monkeypatch.setenv("BATCHGATE_SMTP_PORT", "2525")
    monkeypatch.setenv("BATCHGATE_FLINK_TARGET", "remote")
    monkeypatch.setenv("BATCHGATE_SESSION_SECONDS", "120")
    monkeypatch.setenv("BATCHGATE_DATABASE_URL", "postgresql://env/x")
    monkeypatch.setenv("BATCHGATE_LEASE_SECONDS", "30")
    settings = Settings(max_running=9)
    assert settings.queue.max_running == 9, "a flag beats the environment"
    assert settings.schedules.smtp_port == 2525
    assert settings.engine_settings["flink"].target == "remote"
    assert settings.security.session_seconds == 120
    assert settings.database.database_url == "postgresql://env/x"
    assert settings.instance.lease_seconds == 30
    # A group built alone reads the same variables.
    assert QueueSettings().max_running == 7 and EngineSettings().kill_grace_seconds == 10


def test_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as bad_port:
        Settings(port=-1)
    assert [e["loc"] for e in bad_port.value.errors()] == [("port",)]
    with pytest.raises(ValidationError, match="lease_seconds must be longer than heartbeat_seconds"):
        Settings(heartbeat_seconds=5, lease_seconds=5)
    with pytest.raises(ValidationError, match="open mode"):
        Settings(host="0.0.0.0")


def test_a_group_given_whole_is_kept() -> None:
    instance = InstanceSettings(port=4321)
    assert Settings(instance=instance, port=1).instance is instance

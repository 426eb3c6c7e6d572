"""Where the CLI finds the gateway and the credentials: flags, then BATCHGATE_* variables, then the
config file. A config file that holds a password or a token must be private to its owner."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.client.aio import DEFAULT_URL

KEYS = ("url", "user", "password", "token")
SECRET_KEYS = ("password", "token")


class ConfigError(Exception):
    """The config file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Connection:
    url: str
    user: str | None
    password: str | None
    token: str | None
    source: dict[str, str]  # where each value came from: flag, environment or the config file


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "batchgate" / "config.toml"


def check_permissions(path: Path, has_secret: bool) -> None:
    """Refuse a file others could change, and a file with a secret that others could read."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"config file {path} is writable by others (mode {mode:04o}): anyone could point you at another "
            f"gateway; run: chmod 600 {path}"
        )
    if has_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"config file {path} holds a password or token but is readable by others (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )
    if has_secret and hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"config file {path} holds a password or token but belongs to another user")


def read_config(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    values: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"config file {path}: {key} must be a string")
        values[key] = value
    check_permissions(path, any(values.get(k) for k in SECRET_KEYS))
    return values


def resolve(url: str | None, user: str | None, password: str | None, config: Path | None) -> Connection:
    """Flags win over the environment, which wins over the config file."""
    explicit = config is not None or "BATCHGATE_CONFIG" in os.environ
    path = config or Path(os.environ.get("BATCHGATE_CONFIG") or default_config_path())
    from_file: dict[str, str] = {}
    if explicit or path.exists():
        if explicit and not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        from_file = read_config(path)
    flags = {"url": url, "user": user, "password": password, "token": None}
    values: dict[str, str | None] = {}
    source: dict[str, str] = {}
    for key in KEYS:
        env = os.environ.get(f"BATCHGATE_{key.upper()}")
        for where, value in (("flag", flags[key]), ("environment", env), (f"config file {path}", from_file.get(key))):
            if value is not None and value != "":
                values[key] = value
                source[key] = where
                break
        else:
            values[key] = None
    if "flag" in (source.get("user"), source.get("password")):
        values["token"] = None  # credentials on the command line win over a stored session token
    return Connection(
        url=values["url"] or DEFAULT_URL, user=values["user"], password=values["password"], token=values["token"],
        source=source,
    )

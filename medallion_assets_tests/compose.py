"""docker-compose.yml as Compose reads it, for the tests: its services with .env.example's values
interpolated, and a service's environment."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from medallion_assets_tests.helpers import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, and $$ (a literal $).
VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<named>\w+))")


def env_file(path: Path, commented: bool = False) -> dict[str, str]:
    """KEY=VALUE lines (and `#KEY=VALUE` ones too if `commented`)."""
    pattern = re.compile(r"^#?(\w+)=(.*)$" if commented else r"^(\w+)=(.*)$")
    return dict(m.groups() for line in path.read_text().splitlines() if (m := pattern.match(line)))


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in the file, with these variables."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op = match["braced"] or match["named"], match["op"] or ""
        unset = env.get(name) is None or (op.startswith(":") and env[name] == "")
        if unset and op.endswith("-"):
            return match["arg"]
        if unset and op.endswith("?"):
            raise KeyError(f"{name} is required: {match['arg']}")
        return env.get(name, "")

    return VARIABLE.sub(substitute, value)


@functools.cache
def services() -> dict[str, dict[str, Any]]:
    """The services as Compose sees them with .env.example's values."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env_file(ENV_EXAMPLE))["services"]


def environment(service: str) -> dict[str, str | None]:
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {key: None if value is None else str(value) for key, value in env.items()}

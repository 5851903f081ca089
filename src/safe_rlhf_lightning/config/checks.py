"""The error type of every configuration problem, and the check that raises it."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and what was expected."""


def _check(condition: bool, key: str, expected: str, value: Any) -> None:
    if not condition:
        raise ConfigError(f"config key '{key}' must be {expected}, got {value!r}")

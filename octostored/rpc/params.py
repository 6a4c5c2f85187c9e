"""Checking request params at the boundary, with messages a person can act on."""

from __future__ import annotations

from typing import Any

from .errors import InvalidParams, RequestTooLarge

MAX_LIST = 10_000
"""Most items a list param may hold (run ids, experiment ids, columns, order_by)."""


class Params:
    def __init__(self, method: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidParams(
                f"{method} takes its params as an object, not {type(raw).__name__}",
                'send params like {"root": "/path/to/repo"}',
            )
        self.method = method
        self.raw = raw

    def _get(self, name: str, default: Any) -> Any:
        """The param's value; an explicit null means "not given" (the default)."""
        value = self.raw.get(name)
        return default if value is None else value

    def _bad(self, name: str, want: str) -> InvalidParams:
        got = type(self.raw[name]).__name__
        return InvalidParams(f"{self.method}: '{name}' must be {want}, not {got}",
                             "fix the request's params")

    def str(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self._get(name, default)
        if value is None:
            if required:
                raise InvalidParams(f"{self.method} needs '{name}'", f"add \"{name}\" to the params")
            return None
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def int(self, name: str, default: int | None = None, lo: int | None = None,
            hi: int | None = None) -> int | None:
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        if lo is not None and value < lo:
            raise InvalidParams(f"{self.method}: '{name}' must be at least {lo}, not {value}",
                                "fix the request's params")
        if hi is not None and value > hi:
            raise InvalidParams(f"{self.method}: '{name}' must be at most {hi}, not {value}",
                                "fix the request's params")
        return value

    def float(self, name: str, default: float | None = None) -> float | None:
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(name, "a number")
        return float(value)

    def bool(self, name: str, default: bool = False) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def str_list(self, name: str, most: int = MAX_LIST) -> list[str] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(name, "a list of strings")
        if len(value) > most:
            raise RequestTooLarge(f"{self.method}: '{name}' has {len(value)} items, more than "
                                  f"{most}", "ask for fewer at a time")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.str(name, default)
        assert value is not None
        if value not in choices:
            raise InvalidParams(
                f"{self.method}: '{name}' must be one of {', '.join(choices)}, not {value!r}",
                "fix the request's params")
        return value

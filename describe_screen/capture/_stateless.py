"""Shared by the backends whose desktop needs no connection (Windows, macOS)."""

from __future__ import annotations

from typing import Any


class StatelessDesktop:
    """Entering and leaving do nothing: each call asks the system directly."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

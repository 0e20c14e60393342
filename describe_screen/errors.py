"""The one error type users hear: what went wrong, then what to do next, in plain words."""

from __future__ import annotations


class UserError(Exception):
    """A failure explained for a person who cannot see the screen.

    `problem` says what went wrong, `fix` what to do about it. Both are spoken and printed,
    so they are whole sentences with no file dumps or tracebacks.
    """

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem.strip()
        self.fix = fix.strip()

    def __str__(self) -> str:
        return f"{self.problem} {self.fix}".strip()

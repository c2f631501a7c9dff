"""The one error type of the devstack: what went wrong, and what to do next."""

from __future__ import annotations


class DevstackError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback.

    `fix` is the next step ("stop the process on port 19092, or set …"), kept apart
    from the problem so every message ends with an instruction, not a shrug.
    """

    def __init__(self, problem: str, fix: str = "", *, details: str = "") -> None:
        self.problem = problem
        self.fix = fix
        self.details = details
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.problem]
        if self.details:
            parts.append(self.details.rstrip())
        if self.fix:
            parts.append(f"→ {self.fix}")
        return "\n".join(parts)

"""The lakestack exception tree.

Every error lakestack raises derives from :class:`LakestackError`; the CLI turns them into a
message and an exit code, never a traceback::

    LakestackError
    ├── ProjectError              a project file, contract or model is wrong (exit 2)
    │   ├── ConfigError           lakestack.yaml
    │   └── ContractError         a contract file
    ├── UsageError                a command was called wrongly (exit 2)
    │   └── UnsafePathError       a path escapes the folder it must stay in
    ├── MissingExtraError         an optional dependency is not installed (exit 2)
    ├── StorageError              the catalog or warehouse failed (exit 3)
    │   └── CommitConflictError   a concurrent writer won (Transient: retry from a fresh read)
    └── RunError                  a run failed part-way (exit 3)

:class:`Transient` marks errors that may be retried; everything else is terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


class LakestackError(Exception):
    """Root of every error lakestack raises on purpose."""

    exit_code = 3

    def __str__(self) -> str:
        # A driver's message may quote a secret (a password in a URL); never show it.
        from lakestack._secrets import redact

        return redact(super().__str__())


class Transient:
    """Marker mix-in: the operation may succeed if retried."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a file a problem is: a path, and when known a line, column and key path."""

    file: str
    line: int | None = None
    column: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        if self.key:
            text += f" ({self.key})"
        return text


class ProjectError(LakestackError):
    """A project file is wrong. Carries the location so the user can fix it."""

    exit_code = 2

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ConfigError(ProjectError):
    """`lakestack.yaml` (or an environment block in it) is invalid."""


class ContractError(ProjectError):
    """A contract file is invalid or uses something lakestack does not support."""


class UsageError(LakestackError):
    """A command or API was called with arguments that cannot work."""

    exit_code = 2


class UnsafePathError(UsageError):
    """A path escapes the folder it is confined to (`..`, absolute, or a symlink out)."""


class MissingExtraError(LakestackError):
    """An optional dependency is missing; the message names the extra to install."""

    exit_code = 2

    def __init__(self, feature: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs an optional dependency: pip install 'lakestack[{extra}]'")


class StorageError(LakestackError):
    """The catalog or the warehouse could not do what was asked."""


class CommitConflictError(StorageError, Transient):
    """Another writer committed first; re-read and retry."""


class RunError(LakestackError):
    """A run failed part-way; what was committed before stays committed."""

"""Errors a person can act on: one sentence saying what is wrong and what to do.

Every error class of the protocol lives here, one per code of :data:`.protocol.ERRORS`
(``tests/test_protocol_contract.py`` checks the two agree).

Each is a pygls ``JsonRpcException`` so that raising it in a handler becomes a
JSON-RPC error ``{code, message, data}``; ``data.remedy`` repeats the advice
for clients that show it apart.
"""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcException

from . import protocol


class OctostoreError(JsonRpcException):
    CODE = protocol.NOT_SUPPORTED

    def __init__(self, message: str, remedy: str = "", **data: Any) -> None:
        full = f"{message}; {remedy}" if remedy else message
        super().__init__(message=full, code=self.CODE, data={"remedy": remedy, **data})


class InvalidParams(OctostoreError):
    CODE = protocol.INVALID_PARAMS


class RootNotFound(OctostoreError):
    CODE = protocol.ROOT_NOT_FOUND


class BadFilter(OctostoreError):
    CODE = protocol.BAD_FILTER


class RunNotFound(OctostoreError):
    CODE = protocol.RUN_NOT_FOUND


class ExperimentNotFound(OctostoreError):
    CODE = protocol.EXPERIMENT_NOT_FOUND


class ArtifactNotFound(OctostoreError):
    CODE = protocol.ARTIFACT_NOT_FOUND


class PathOutside(OctostoreError):
    CODE = protocol.PATH_OUTSIDE


class RequestTooLarge(OctostoreError):
    CODE = protocol.REQUEST_TOO_LARGE


class ReplyTooLarge(OctostoreError):
    CODE = protocol.REPLY_TOO_LARGE


class TooManyRoots(OctostoreError):
    CODE = protocol.TOO_MANY_ROOTS


class DeadlineExceeded(OctostoreError):
    CODE = protocol.DEADLINE_EXCEEDED


class HookRefused(OctostoreError):
    CODE = protocol.HOOK_REFUSED


class ConfirmationRequired(OctostoreError):
    CODE = protocol.CONFIRMATION_REQUIRED


class LogNotFound(OctostoreError):
    CODE = protocol.LOG_NOT_FOUND


class CommitRefused(OctostoreError):
    """The repo cannot take a commit now (not a repo, a merge in progress, another commit)."""

    CODE = protocol.COMMIT_REFUSED


class GitFailed(OctostoreError):
    """A git command failed; the repo was left as it was."""

    CODE = protocol.GIT_FAILED


class JobNotFound(OctostoreError):
    """No job with that id."""

    CODE = protocol.JOB_NOT_FOUND


class CannotReproduce(OctostoreError):
    """The request cannot start a reproduction."""

    CODE = protocol.CANNOT_REPRODUCE

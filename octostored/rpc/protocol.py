"""The socket protocol's single source of truth: version, methods, error codes.

Clients check ``PROTOCOL_VERSION`` through ``octostore/status`` and refuse a
mismatch with a remedy.  Error codes sit outside the JSON-RPC (-32768..-32000)
and LSP (-32899..-32800) reserved ranges; append new ones, never renumber.
"""

PROTOCOL_VERSION = 1
"""Bump on any incompatible change of a method's params or reply."""

METHODS = (
    "octostore/status",
    "octostore/sync",
    "octostore/open",
    "octostore/subscribe",
    "octostore/unsubscribe",
    "octostore/experiments",
    "octostore/runs",
    "octostore/run",
    "octostore/metric_history",
    "octostore/artifacts",
    "octostore/artifact",
    "octostore/log",
    "octostore/insights",
    "octostore/compare",
    "octostore/environment",
    "octostore/shutdown",
    "octostore/commit",
    "octostore/reproduce",
    "octostore/jobs",
    "octostore/cancel",
)
"""Every ``octostore/*`` method; each is advertised as capability ``cmd-<name>``."""

NOTIFICATION_CHANGED = "octostore/changed"
NOTIFICATION_JOB = "octostore/job"

# Error codes (append only).
ROOT_NOT_FOUND = 1001
BAD_FILTER = 1002
RUN_NOT_FOUND = 1003
EXPERIMENT_NOT_FOUND = 1004
ARTIFACT_NOT_FOUND = 1005
PATH_OUTSIDE = 1006
NOT_SUPPORTED = 1007
LOG_NOT_FOUND = 1008
REQUEST_TOO_LARGE = 1009
"""A request's filter, pattern or other input is over its size or cost cap."""
REPLY_TOO_LARGE = 1010
"""The reply would be over the reply cap: ask for a smaller page."""
TOO_MANY_ROOTS = 1011
"""This connection has as many roots open as it may."""
DEADLINE_EXCEEDED = 1012
"""The request ran past its deadline and was stopped."""
COMMIT_REFUSED = 1020
GIT_FAILED = 1021
HOOK_REFUSED = 1022
"""The repo's pre-commit hook refused the commit."""
JOB_NOT_FOUND = 1030
CANNOT_REPRODUCE = 1031
CONFIRMATION_REQUIRED = 1032
"""A command the repo recorded must be shown to the user and confirmed (``confirmed: true``)."""
INVALID_PARAMS = -32602

"""The console part of the capture: the tag ``octostore.console_log`` on every run.

* Under a writer (``octostore run -- CMD``, a reproduction, or this process's own
  tee): ``OCTOSTORE_CONSOLE_LOG`` names the log; the run is tagged with its path
  relative to the log's root, and Python's buffers are flushed first, so what was
  printed before the run started is in the log before the run's start time.
* Otherwise, when the project opted in (``capture_console = true`` under
  ``[tool.octostore]`` in ``pyproject.toml``, or at the top of ``octostore.toml``,
  at the root), the first run starts the in-process tee
  (:mod:`octostored.console.inprocess`); if it cannot, the run is tagged
  ``octostore.console_capture`` with the reason, and so are the process's later runs.
"""

from __future__ import annotations

import os
import sys
from .. import settings

from ..console import flush_std_streams
from ..console.logformat import ENV_LOG, STATE_TAG, TAG, rel_path, root_of
from . import gitstate

SETTING = "capture_console"
_wanted: dict[str, bool] = {}


def console_tags(cwd: str | None = None) -> dict[str, str]:
    log = os.environ.get(ENV_LOG)
    if log:
        flush_std_streams()
        root = root_of(log)
        return {TAG: rel_path(root, log)} if root else {}
    from ..console import inprocess

    reason = inprocess.off_reason()
    if reason:
        return {STATE_TAG: reason}
    cwd = os.path.abspath(cwd or os.getcwd())
    root = gitstate.find_repo(cwd) or cwd
    if not wants_console(root):
        return {}
    try:
        log = inprocess.start(root, list(getattr(sys, "orig_argv", None) or sys.argv))
    except inprocess.CaptureOff as exc:
        inprocess.turned_off(str(exc))
        return {STATE_TAG: str(exc)}
    return {TAG: rel_path(root, log)}


def wants_console(root: str) -> bool:
    """``capture_console = true`` in the root's configuration (read once per process)."""
    if root not in _wanted:
        _wanted[root] = _read_setting(root)
    return _wanted[root]


def _read_setting(root: str) -> bool:
    for _name, section in settings.sections(root):
        if SETTING in section:
            return section[SETTING] is True
    return False


"""Messages between the daemon link, the screens and the app.

Widgets post messages up; the link posts to the screens that listen.  A flood of
``octostore/changed`` notifications (a training loop logging every step) must not
become a flood of re-fetches: :class:`RunsChanged` uses ``can_replace`` so that
a pending one absorbs the next, merging the run ids (toolong's ``PendingLines``).
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class RunsChanged(Message):
    """Runs of the root changed (the ``octostore/changed`` payload, coalesced).

    ``fresh`` is True when the listener cannot trust its clock any more (the
    daemon restarted, the link reconnected): reload everything.
    """

    def __init__(
        self,
        root: str,
        clock: str,
        runs: set[str],
        removed: set[str],
        experiments: set[str],
        environment: bool = False,
        git: bool = False,
        fresh: bool = False,
    ) -> None:
        super().__init__()
        self.root = root
        self.clock = clock
        self.runs = runs
        self.removed = removed
        self.experiments = experiments
        self.environment = environment
        self.git = git
        self.fresh = fresh

    def can_replace(self, message: Message) -> bool:
        # ``self`` is the older message; ``message`` the newer one that takes its place.
        if not isinstance(message, RunsChanged) or message.root != self.root:
            return False
        message.runs |= self.runs
        message.removed |= self.removed
        message.experiments |= self.experiments
        message.environment = message.environment or self.environment
        message.git = message.git or self.git
        message.fresh = message.fresh or self.fresh
        return True

    @classmethod
    def from_params(cls, params: dict[str, Any], fresh: bool = False) -> RunsChanged:
        return cls(
            root=params.get("root", ""),
            clock=params.get("clock", ""),
            runs=set(params.get("runs") or ()),
            removed=set(params.get("removed") or ()),
            experiments=set(params.get("experiments") or ()),
            environment=bool(params.get("environment")),
            git=bool(params.get("git")),
            fresh=fresh,
        )


class DaemonReady(Message):
    """The link is connected and the root is open (``octostore/open`` reply in ``info``)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__()
        self.info = info


class DaemonLost(Message):
    """The link has no daemon: ``title`` and ``message`` say what happened and what to do."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title = title
        self.message = message


class OpenRun(Message):
    """Open a run's detail screen (``overlay`` runs are charted with it)."""

    def __init__(self, run_id: str, overlay: list[str] | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.overlay = overlay or []


class CompareRuns(Message):
    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids


class FirstData(Message):
    """The home screen shows data for the first time (the start-up benchmark waits on it)."""

"""The app: screens, global keys and the wiring between the daemon link and the screens.

Kept thin on purpose (posting's 65 KB ``app.py`` is the warning): screens own
their data and their keys, widgets own their drawing, :mod:`.daemon_link` owns
the connection.  The app holds two modes, Insights (home) and Experiments,
each with its own screen stack, so that switching between them keeps each one's
state; run detail and compare are pushed on top of the current mode.

:func:`make_app` builds the app from a root and either a socket path or a
client factory; the console script and the tests both use it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from .daemon_link import ClientFactory, DaemonLink, LinkError, link_error
from .messages import CompareRuns, DaemonLost, DaemonReady, FirstData, OpenRun
from .prestart import DaemonStarter
from .safe_output import install as _install_safe_output
from .screens.base import LinkedScreen
from .screens.insights import InsightsScreen

# The other screens are imported when first shown: the first screen must appear fast.

DARK, LIGHT = "textual-dark", "textual-light"


class OctostoreApp(App[None]):
    CSS_PATH = str(Path(__file__).with_name("octostore.tcss"))
    """Absolute, so that subclasses elsewhere (the start-up benchmark) find it too."""
    TITLE = "octostore"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("i", "mode('insights')", "Insights"),
        Binding("e", "mode('experiments')", "Experiments"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False),
        Binding("q", "quit", "Quit"),
        # Reserved for features that land with their own issues (commit, reproduce):
        # the keys are taken now so that nothing else claims them.
        Binding("C", "commit", "Commit runs", show=False),
        Binding("R", "reproduce", "Reproduce run", show=False),
    ]

    def __init__(self, link: DaemonLink, *, theme: str | None = None) -> None:
        _install_safe_output()
        super().__init__()
        self.link = link
        self.started = time.perf_counter()
        self.first_data_seconds: float | None = None
        """Seconds from app creation to the first screen with data (the start-up benchmark)."""
        self._outage: tuple[str, str] | None = None
        self.worker_errors: list[BaseException | None] = []
        """Unexpected worker failures (each was shown as a notification); tests assert on it."""
        if theme:
            self.theme = theme

    def on_mount(self) -> None:
        self.add_mode("insights", InsightsScreen)
        self.add_mode("experiments", _experiments_screen)
        self.link.start(self)
        self.switch_mode("insights")

    async def on_unmount(self) -> None:
        await self.link.close()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < 110, "-narrow")

    # -- wiring ---------------------------------------------------------------------------
    def on_open_run(self, message: OpenRun) -> None:
        from .screens.run_detail import RunDetailScreen

        self.push_screen(RunDetailScreen(message.run_id, message.overlay))

    def on_compare_runs(self, message: CompareRuns) -> None:
        from .screens.compare import CompareScreen

        self.push_screen(CompareScreen(message.run_ids))

    def on_first_data(self, message: FirstData) -> None:
        if self.first_data_seconds is None:
            self.first_data_seconds = time.perf_counter() - self.started

    def on_daemon_lost(self, message: DaemonLost) -> None:
        # The link retries with backoff; say it once per outage, not once per attempt.
        if self._outage == (message.title, message.message):
            return
        self._outage = (message.title, message.message)
        self.notify(message.message, title=message.title, severity="error", timeout=10)

    def on_daemon_ready(self, message: DaemonReady) -> None:
        if self._outage is not None:
            self.notify("Connected to the daemon again.", title="Daemon back", timeout=3)
        self._outage = None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed unexpectedly becomes a notification, never a traceback."""
        if event.state != WorkerState.ERROR:
            return
        node = event.worker.node
        if isinstance(node, DOMNode) and not node.is_attached:
            return  # its screen went away while it ran (closing): nothing to tell
        err = event.worker.error
        self.worker_errors.append(err)
        self.log.error(f"worker {event.worker.name} failed: {err!r}")
        le = err if isinstance(err, LinkError) else link_error(err or Exception("unknown error"))
        self.notify(le.message, title=le.title, severity="error", timeout=10)

    # -- actions ----------------------------------------------------------------------------
    def action_mode(self, mode: str) -> None:
        if self.current_mode == mode:
            # Already there: go back to the mode's home screen (out of run detail/compare).
            while len(self.screen_stack) > 1:
                self.pop_screen()
            return
        self.switch_mode(mode)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_toggle_dark(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def action_commit(self) -> None:
        self.notify(
            "The dashboard does not commit runs itself: in a terminal, "
            "`octostore commit --dry-run` shows what would go into git, `octostore commit` "
            "commits it.",
            title="Commit runs",
            timeout=5,
        )

    def action_reproduce(self) -> None:
        self.notify(
            "The dashboard does not reproduce runs itself: in a terminal, "
            "`octostore reproduce RUN` shows what will run, asks, and compares the metrics.",
            title="Reproduce run",
            timeout=5,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Go to Insights",
            "The home screen: runs at a glance",
            lambda: self.action_mode("insights"),
        )
        yield SystemCommand(
            "Go to Experiments",
            "Experiments and their runs grid",
            lambda: self.action_mode("experiments"),
        )
        yield SystemCommand("Help", "What this screen does and its keys", self.action_help)
        yield SystemCommand(
            "Toggle dark/light theme", "Charts follow the theme", self.action_toggle_dark
        )
        yield SystemCommand(
            "Reconnect to the daemon", "After the daemon went away", self.link.retry
        )
        target = screen
        if not isinstance(target, LinkedScreen) and len(self.screen_stack) > 1:
            target = self.screen_stack[-2]
        if isinstance(target, LinkedScreen):
            for title, help_text, callback in target.palette_commands():
                yield SystemCommand(title, help_text, callback)
        yield SystemCommand(
            "Commit runs (says how, in a terminal)",
            "`octostore commit` puts runs, their environment and code state into git",
            self.action_commit,
            discover=False,
        )
        yield SystemCommand(
            "Reproduce run (says how, in a terminal)",
            "`octostore reproduce RUN` re-runs a committed run and compares its metrics",
            self.action_reproduce,
            discover=False,
        )
        yield from super().get_system_commands(screen)


def _experiments_screen() -> Screen[Any]:
    from .screens.experiments import ExperimentsScreen

    return ExperimentsScreen()


def make_app(
    root: str = ".",
    socket_path: str | None = None,
    *,
    client_factory: ClientFactory | None = None,
    autostart: bool = True,
    timeout: float = 30.0,
    theme: str | None = None,
    starter: DaemonStarter | None = None,
    app_class: type[OctostoreApp] | None = None,
) -> OctostoreApp:
    """The dashboard for ``root``, talking to the daemon at ``socket_path`` (default socket).

    ``client_factory`` returns a fresh, unconnected :class:`octostored.client.AsyncClient`
    (tests hand one wired to a test daemon); ``autostart`` starts a daemon when none answers;
    ``starter`` is a daemon start already under way
    (:func:`octostore_tui.prestart.start_if_absent`).
    """
    import os

    link = DaemonLink(
        os.path.abspath(root),
        socket_path,
        client_factory=client_factory,
        autostart=autostart,
        timeout=timeout,
        starter=starter,
    )
    return (app_class or OctostoreApp)(link, theme=theme)

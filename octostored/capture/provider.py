"""The MLflow run context provider (entry point ``mlflow.run_context_provider``).

MLflow instantiates this class when ``mlflow`` is imported and calls
``in_context()`` then ``tags()`` at every fluent ``mlflow.start_run()``
(``MlflowClient.create_run`` does not consult providers).  It duck-types
MLflow's ``RunContextProvider`` rather than subclassing it: the module imports
nothing but the standard library, and loads nothing until a run starts.

It also tags the run with its console log, or starts the in-process console
tee when the project asked for it (:mod:`~octostored.capture.consolelog`).

It must never make a run fail: MLflow only catches ``ImportError`` and
``AttributeError`` while loading plugins and logs other errors from
``tags()`` as warnings, so every error is caught here and recorded as the tag
``octostore.capture_error`` (``octostore.console_capture`` for the console
part).  ``OCTOSTORE_CAPTURE=0`` turns it all off.

The same file runs as ``octostored.capture.provider`` (the full octostore) and as
``octostore_capture.capture.provider`` (the plugin alone, ``octostore capture install``).
Where both are installed MLflow loads both; the lone copy then stands aside
(:func:`stands_aside`) so each run is tagged once, by the full octostore's copy.
"""

from __future__ import annotations

import os

DISABLE_ENV = "OCTOSTORE_CAPTURE"
GROUP = "mlflow.run_context_provider"
FULL_PACKAGE = "octostored"
_aside: list[bool] = []
"""Per process: whether this copy stands aside (computed once)."""


def stands_aside() -> bool:
    """True for a copy that is not the full octostore's when the full octostore's provider is
    registered in this environment too (MLflow loads both: the full one does the tagging)."""
    if not _aside:
        _aside.append(_full_registered() if __name__.split(".")[0] != FULL_PACKAGE else False)
    return _aside[0]


def _full_registered() -> bool:
    try:
        import importlib.util

        if importlib.util.find_spec(FULL_PACKAGE) is None:
            return False  # the usual case, and cheap: no metadata read
        from importlib.metadata import entry_points

        eps = entry_points()
        group = eps.select(group=GROUP) if hasattr(eps, "select") else eps.get(GROUP, [])
        return any(ep.value.startswith(FULL_PACKAGE + ".") for ep in group)
    except Exception:  # noqa: BLE001 - when in doubt, tag (twice is better than never)
        return False


class OctostoreRunContext:
    """Adds ``octostore.*`` capture tags to every run started with ``mlflow.start_run``."""

    def __init__(self) -> None:
        # MLflow builds its providers at ``import mlflow``, before a script reads its data:
        # the time to start seeing the files it reads (capture/inputs.py).
        if self.in_context():
            try:
                from .inputs import install

                install()
            except Exception:  # noqa: BLE001 - never fail the user's import
                pass

    def in_context(self) -> bool:
        if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return False
        return not stands_aside()

    def tags(self) -> dict[str, str]:
        try:
            from .collect import collect

            tags = collect()
        except Exception as exc:  # noqa: BLE001 - never fail the user's run
            tags = {"octostore.capture_error": f"{type(exc).__name__}: {exc}"[:1000]}
        try:
            from .consolelog import console_tags

            tags.update(console_tags())
        except Exception as exc:  # noqa: BLE001
            tags["octostore.console_capture"] = f"off: {type(exc).__name__}: {exc}"[:1000]
        return tags

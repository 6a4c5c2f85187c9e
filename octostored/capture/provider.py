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
"""

from __future__ import annotations

import os

DISABLE_ENV = "OCTOSTORE_CAPTURE"


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
        return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")

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

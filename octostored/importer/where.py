"""What ``octostore import`` reads and writes, decided without MLflow (the CLI's side).

:func:`source` turns SOURCE into what the worker opens: the committed runs (default), an
``mlruns`` folder, an ``mlflow.db`` (path or ``sqlite:///`` URI, or another SQLAlchemy
URI) or a tracking server the user trusts (:mod:`octostored.servertrust`).
:func:`destination` is the repo's own store: ``MLFLOW_TRACKING_URI`` when set (a database),
else ``sqlite:///<repo top>/mlflow.db``, which is what stock MLflow uses when started at
the repo's top with no settings.  :func:`worker_python` and :func:`worker_env` follow the
remote-server worker's rule (``OCTOSTORE_MLFLOW_PYTHON``, else this Python).

Every refusal is an :class:`ImportRefused` whose text is one sentence with what to do.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

from ..sources.discover import COMMITTED_STORE
from ..sources.filestore import is_file_store
from ..sources.remote import scrub_uri

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SQLITE_HEADER = b"SQLite format 3\x00"
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DROP_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_CONTEXT", "PYTHONHOME", "VIRTUAL_ENV")
SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
WHAT = ("SOURCE is an mlruns folder, an mlflow.db file, a sqlite:/// URI or an http(s):// "
        "tracking server")


class ImportRefused(Exception):
    """``str()`` is one sentence: what is wrong and what to do."""


def _scheme(uri: str) -> str:
    head = uri.split("://", 1)[0] if "://" in uri else ""
    return head.split("+", 1)[0].lower()


def _is_sqlite_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _sqlite_path(uri: str, cwd: str) -> str:
    rest = uri.split("://", 1)[1]
    path = unquote(rest[1:] if rest.startswith("/") else rest)
    return os.path.normpath(os.path.join(cwd, path))


def source(arg: str | None, top: str, cwd: str) -> dict[str, Any]:
    """The worker's ``source``: ``uri``, ``kind`` (file, sql, server), ``folder`` (the store
    folder of a file store, the database's folder for SQLite), ``absolute_ok`` (whether an
    absolute artifact path the store records may be read: not for the repo's committed
    runs, which are untrusted input) and ``label`` (what to show)."""
    if arg is None:
        folder = os.path.join(top, COMMITTED_STORE)
        if not is_file_store(folder):
            raise ImportRefused(f"{top} has no committed runs (no {COMMITTED_STORE}/); commit "
                                "runs with `octostore commit`, or name a SOURCE (an mlruns "
                                "folder, an mlflow.db or a tracking server URI)")
        return {"uri": folder, "kind": "file", "folder": folder, "absolute_ok": False,
                "label": f"the committed runs ({COMMITTED_STORE})"}
    scheme = _scheme(arg)
    if scheme in ("http", "https"):
        from ..servertrust import is_trusted, origin

        if not is_trusted(arg):
            o = origin(arg)
            raise ImportRefused(f"you have not trusted the tracking server {o}; run "
                                f"`octostore remote trust {o}` first (octostore sends your "
                                "MLflow credentials only to servers you trust)")
        return {"uri": arg, "kind": "server", "folder": None, "absolute_ok": True,
                "label": scrub_uri(arg)}
    if scheme == "sqlite":
        path = _sqlite_path(arg, cwd)
        if not os.path.isfile(path) or not _is_sqlite_file(path):
            raise ImportRefused(f"{path} is not an SQLite database; {WHAT}")
        return {"uri": f"sqlite:///{path}", "kind": "sql", "folder": os.path.dirname(path),
                "absolute_ok": True, "label": path}
    if scheme in SQL_SCHEMES:
        return {"uri": arg, "kind": "sql", "folder": None, "absolute_ok": True,
                "label": scrub_uri(arg)}
    if scheme == "file":
        arg = unquote(urlsplit(arg).path)
    elif scheme:
        raise ImportRefused(f"octostore import cannot read {scrub_uri(arg)}; {WHAT}")
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(arg)))
    if not os.path.exists(path):
        raise ImportRefused(f"{path} does not exist; {WHAT}")
    if os.path.isfile(path):
        if not _is_sqlite_file(path):
            raise ImportRefused(f"{path} is not an SQLite database; {WHAT}")
        return {"uri": f"sqlite:///{path}", "kind": "sql", "folder": os.path.dirname(path),
                "absolute_ok": True, "label": path}
    for folder in (path, os.path.join(path, "mlruns")):
        if is_file_store(folder):
            return {"uri": folder, "kind": "file", "folder": folder, "absolute_ok": True,
                    "label": folder}
    db = os.path.join(path, "mlflow.db")
    if _is_sqlite_file(db):
        return {"uri": f"sqlite:///{db}", "kind": "sql", "folder": path, "absolute_ok": True,
                "label": db}
    raise ImportRefused(f"{path} holds no MLflow store (no <experiment>/meta.yaml, no "
                        f"mlflow.db); {WHAT}")


def destination(top: str, cwd: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The worker's ``destination``: ``uri``, ``sqlite_path`` (None for other databases),
    ``label``."""
    env = os.environ if env is None else env
    uri = (env.get("MLFLOW_TRACKING_URI") or "").strip()
    if not uri:
        path = os.path.join(top, "mlflow.db")
        return {"uri": f"sqlite:///{path}", "sqlite_path": path, "label": path}
    scheme = _scheme(uri)
    if scheme == "sqlite":
        path = _sqlite_path(uri, cwd)
        return {"uri": f"sqlite:///{path}", "sqlite_path": path, "label": path}
    if scheme in SQL_SCHEMES:
        return {"uri": uri, "sqlite_path": None, "label": scrub_uri(uri)}
    if scheme in ("", "file"):
        raise ImportRefused(f"MLFLOW_TRACKING_URI names a file store ({uri}), which MLflow "
                            "deprecated and octostore import does not write; unset it to "
                            "import into ./mlflow.db, or point it at a sqlite:/// database")
    raise ImportRefused(f"MLFLOW_TRACKING_URI names {scrub_uri(uri)}, where MLflow cannot keep "
                        "run ids; unset it to import into ./mlflow.db, or point it at a "
                        "sqlite:/// (or other SQL) database")


def same_store(src: dict[str, Any], dest: dict[str, Any]) -> bool:
    a = src["uri"]
    return a == dest["uri"] or (src["kind"] == "sql" and dest.get("sqlite_path") is not None
                                and a == f"sqlite:///{dest['sqlite_path']}")


def worker_python(env: dict[str, str] | None = None) -> str:
    """The Python that runs the worker: ``OCTOSTORE_MLFLOW_PYTHON``, else this one (the rule
    of the remote-server worker, :mod:`octostored.sources.remote`)."""
    env = os.environ if env is None else env
    return env.get("OCTOSTORE_MLFLOW_PYTHON") or sys.executable


def worker_env(src: dict[str, Any]) -> dict[str, str]:
    """This process's environment for the worker: octostore importable, no tracking URI
    (both stores are named explicitly), the file store allowed when the source is one, and
    MLflow credentials only when the source is a server the user trusts."""
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    if src["kind"] != "server":
        for k in SECRET_ENV:
            env.pop(k, None)
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"]
                                      if env.get("PYTHONPATH") else "")
    if src["kind"] == "file":
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    env.update(OCTOSTORE_CAPTURE="0", PYTHONUNBUFFERED="1")
    return env

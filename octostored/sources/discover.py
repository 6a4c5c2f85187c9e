"""Finding a root's MLflow stores with zero configuration.

A root is a git work tree or any folder.  Its stores are:

* file stores: folders anywhere under the root (bounded depth: :data:`MAX_DEPTH` in a git
  work tree or a folder with a store at its top, else ``outside_git_depth``, skipping
  virtualenvs, ``node_modules`` and other hidden folders) that hold experiment
  ``meta.yaml`` files, as MLflow decides (a plain ``./mlruns`` that only holds
  the artifacts of ``mlflow.db`` is not one);
* octostore's committed runs under ``.octostore/runs`` (a file-store layout);
* SQLite stores: ``mlflow.db`` and ``mlruns.db`` at the root or one level down;
* whatever ``[tool.octostore]`` in ``pyproject.toml`` / ``octostore.toml`` names
  (``stores = ["path", ...]``) and the root's ``MLFLOW_TRACKING_URI`` when it is
  set in a ``.env`` file and names one of those kinds;
* remote MLflow tracking servers (``http://``, ``https://``) named there or in
  ``.octostore/remotes.toml`` (``remotes = [...]``, written by ``octostore remote add``).
  A server is one source however often it is named; its id is the URI without user
  info, query or fragment (:func:`~octostored.sources.remote.scrub_uri`), and the
  raw URI and the root's ``.env`` credentials ride along only in fields that are
  never printed (``uri``, ``env``).  Naming a server here trusts it not: the source
  contacts it only once the user has (:mod:`octostored.servertrust`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from .filestore import is_file_store
from .remote import is_remote_uri, scrub_uri

SKIP_DIRS = {
    "node_modules", "site-packages", "__pycache__", "venv", "env", "build", "dist",
    "artifacts", "data", "models", "wandb", "lightning_logs",
}
"""Folders never searched for stores: big, and never an MLflow tracking root."""
MAX_DEPTH = 4
SQLITE_NAMES = ("mlflow.db", "mlruns.db")
COMMITTED_STORE = os.path.join(".octostore", "runs")
"""Where ``octostore commit`` keeps exported runs (not ``./mlruns``: see DESIGN.md)."""
REMOTES_FILE = os.path.join(".octostore", "remotes.toml")
"""The servers ``octostore remote add`` names (``remotes = ["https://...", ...]``)."""
CONFIG_FILES = ("pyproject.toml", "octostore.toml", ".env", REMOTES_FILE)
"""Root-relative files whose change can add or remove a source."""
REMOTE_ENV = (
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_AWS_SIGV4",
)
"""Variables of the root's ``.env`` handed to a server's worker (they win over the daemon's):
credentials, which go only to a server the user trusts."""
USER_ONLY_ENV = (
    "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH",
)
"""Variables that change whom the worker trusts or what it sends (TLS checks off, a CA the
repo ships, the user's client key, an auth plugin): from the user's own environment only.
A repo's ``.env`` setting one is ignored with a warning, or it could turn TLS off on the
way to a trusted server and let a man in the middle read the user's token."""


@dataclass(frozen=True, slots=True)
class StoreRef:
    kind: str
    """"file", "sqlite" or "remote"."""
    path: str
    """Absolute path of the folder or database file; a server's scrubbed URI."""
    id: str
    """Path relative to the root (a server: its scrubbed URI): names the store in answers."""
    committed: bool = False
    """True for octostore's committed-runs store."""
    uri: str = field(default="", repr=False, compare=False)
    """A server's URI as configured (it may hold ``user:password@``): never print it."""
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    """A server's credentials and TLS variables from the root's ``.env``: never print them."""


@dataclass(frozen=True, slots=True)
class Search:
    """How deep :func:`discover` looks for stores under a root, and why."""

    depth: int
    git: bool
    """The root is a git work tree."""
    limited: bool
    """Not a git work tree and no MLflow store at its top (say ``/tmp`` or ``~``): only
    ``settings.outside_git_depth`` folders deep, so other people's folders stay unread."""


def search_depth(root: str, warnings: list[str] | None = None) -> Search:
    """The depth :func:`discover` searches ``root`` to (a few ``stat`` calls)."""
    git = os.path.exists(os.path.join(root, ".git"))
    if git or _store_at_top(root):
        return Search(MAX_DEPTH, git, False)
    return Search(min(settings.outside_git_depth(warnings), MAX_DEPTH), False, True)


def _store_at_top(root: str) -> bool:
    return (any(os.path.isfile(os.path.join(root, n)) for n in SQLITE_NAMES)
            or is_file_store(root) or is_file_store(os.path.join(root, "mlruns"))
            or is_file_store(os.path.join(root, COMMITTED_STORE)))


def discover(root: str) -> tuple[list[StoreRef], list[str]]:
    """The stores of ``root`` and warnings about configured stores that are missing."""
    warnings: list[str] = []
    found: dict[str, StoreRef] = {}
    depth = search_depth(root, warnings).depth

    def add(kind: str, path: str, committed: bool = False) -> None:
        path = os.path.realpath(path)
        rel = os.path.relpath(path, root)
        found.setdefault(path, StoreRef(kind, path, rel, committed))

    committed = os.path.join(root, COMMITTED_STORE)
    if is_file_store(committed):
        add("file", committed, committed=True)
    for path in _walk_for_file_stores(root, depth):
        add("file", path)
    for base in [root, *(_child_dirs(root) if depth else [])]:
        for name in SQLITE_NAMES:
            p = os.path.join(base, name)
            if os.path.isfile(p):
                add("sqlite", p)
    for uri in configured_stores(root, warnings):
        path = uri_to_path(uri, root)
        if path is None:
            continue
        if os.path.isfile(path):
            add("sqlite", path)
        elif os.path.isdir(path) and is_file_store(path):
            add("file", path)
        elif not os.path.exists(path):
            warnings.append(f"configured store {uri} does not exist yet")
    remotes = remote_stores(root, warnings)
    # Local stores first (committed first among them), servers last: a server's experiment
    # ids then never take the plain keys away from the repo's own experiments.
    local = sorted(found.values(), key=lambda s: (not s.committed, s.id))
    return local + remotes, warnings


def remote_stores(root: str, warnings: list[str]) -> list[StoreRef]:
    """The tracking servers ``root`` names, one per server (by scrubbed URI).

    When a server is named twice, the URI that carries user info wins (it is how the user
    authenticates); the root's ``.env`` credentials go with every server of the root.
    """
    dotenv = read_dotenv(root)
    env = tuple(sorted((k, v) for k, v in dotenv.items() if k in REMOTE_ENV))
    ignored = sorted(k for k in dotenv if k in USER_ONLY_ENV)
    found: dict[str, StoreRef] = {}
    # (configured_stores' own warnings are discover's to give, once)
    for uri in [*configured_stores(root, []), *configured_remotes(root, warnings)]:
        uri = uri.strip()
        if not is_remote_uri(uri):
            continue
        sid = scrub_uri(uri)
        if sid == "<unparsable URI>" or "://" not in sid or sid.endswith("://"):
            warnings.append(f"configured server {sid} is not a URI octostore can read")
            continue
        prev = found.get(sid)
        if prev is None or ("@" in uri.split("://", 1)[1].split("/", 1)[0]
                            and "@" not in prev.uri.split("://", 1)[1].split("/", 1)[0]):
            found[sid] = StoreRef("remote", sid, sid, uri=uri, env=env)
    if ignored and found:
        warnings.append(f".env sets {', '.join(ignored)}, which octostore ignores for the "
                        "repo's servers (a repo must not weaken TLS or pick what is sent to a "
                        "server that gets your credentials); set it in your own environment "
                        "before starting the daemon if you mean it")
    return sorted(found.values(), key=lambda s: s.id)


def config_signature(root: str) -> tuple[Any, ...]:
    """What the root's configuration says about its stores and servers: when this changes,
    discovery must run again (in memory only: it may hold credentials)."""
    env = read_dotenv(root)
    return (tuple(configured_stores(root, [])), tuple(configured_remotes(root, [])),
            tuple(sorted((k, v) for k, v in env.items() if k in REMOTE_ENV + USER_ONLY_ENV)))


def configured_remotes(root: str, warnings: list[str]) -> list[str]:
    """The URIs of ``.octostore/remotes.toml`` (``remotes = [...]``)."""
    path = os.path.join(root, REMOTES_FILE)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        warnings.append(f"{REMOTES_FILE}: cannot read it ({exc}); fix or remove it, or use "
                        "`octostore remote add/remove`")
        return []
    remotes = data.get("remotes", [])
    if not isinstance(remotes, list):
        warnings.append(f"{REMOTES_FILE}: 'remotes' must be a list of URIs")
        return []
    return [str(u) for u in remotes if isinstance(u, str)]


def read_dotenv(root: str, warnings: list[str] | None = None) -> dict[str, str]:
    """``KEY=value`` lines of the root's ``.env`` (``export``, quotes and comments allowed).

    A ``.env`` that is not a regular file (a FIFO would block) or is over the cap is skipped,
    with a warning in ``warnings`` when given."""
    from ..safefile import ENV_CAP, Refused, read_text

    out: dict[str, str] = {}
    path = os.path.join(root, ".env")
    try:
        lines = read_text(path, ENV_CAP, "a .env file", label=".env").splitlines()
    except Refused as exc:
        if warnings is not None:
            warnings.append(str(exc))
        return out
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) >= 2:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key:
            out[key] = value
    return out


def uri_to_path(uri: str, root: str) -> str | None:
    """Local path of a tracking URI, or None for remote ones (http, databricks, ...)."""
    if uri.startswith("sqlite:///"):
        return os.path.join(root, uri[len("sqlite:///") :])
    if uri.startswith("file://"):
        return os.path.join(root, uri[len("file://") :])
    if "://" in uri or uri.startswith("databricks"):
        return None
    return os.path.join(root, uri)


def configured_stores(root: str, warnings: list[str]) -> list[str]:
    uris: list[str] = []
    for _name, section in settings.sections(root, warnings):
        stores = section.get("stores", [])
        if isinstance(stores, list):
            uris.extend(str(s) for s in stores)
    uri = read_dotenv(root, warnings).get("MLFLOW_TRACKING_URI")
    if uri:
        uris.append(uri)
    return uris


def _child_dirs(root: str) -> list[str]:
    try:
        return [
            e.path for e in os.scandir(root)
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            and e.name not in SKIP_DIRS
        ]
    except OSError:
        return []


def _walk_for_file_stores(root: str, max_depth: int = MAX_DEPTH) -> list[str]:
    out: list[str] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > 0 and os.path.basename(folder) == "mlruns" or _looks_like_store(folder):
            if is_file_store(folder):
                out.append(folder)
                continue
        if depth >= max_depth:
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name in SKIP_DIRS:
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, depth + 1))
            except OSError:
                continue
    return sorted(out)


def _looks_like_store(folder: str) -> bool:
    # Cheap pre-check so only folders with a ".trash" or a "0" experiment get a closer look.
    return os.path.isfile(os.path.join(folder, "0", "meta.yaml")) or os.path.isdir(
        os.path.join(folder, ".trash")
    )

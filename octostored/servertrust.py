"""The tracking servers the user trusts: the only ones octostore contacts and sends her MLflow
credentials to.  Standard library only.

A repo is untrusted input: a server it names (``.octostore/remotes.toml``, ``[tool.octostore]
stores``, the ``.env`` ``MLFLOW_TRACKING_URI``) is not contacted until the user trusts it
(``octostore remote trust URI``; ``octostore remote add`` trusts the server it adds).  Trust
lives in the user's own config, never in a repo: ``$XDG_CONFIG_HOME/octostore/
trusted-servers.toml`` (``servers = ["https://mlflow.example.com", ...]``), or ``.json``
(``{"servers": [...]}``); default ``~/.config/octostore``.  A server is its scheme, host and
port (:func:`server_key`: lowercase, default ports filled in), so trusting
``https://MLflow.example.com`` trusts ``https://mlflow.example.com:443/any/path`` and nothing
on another port or scheme.
"""

from __future__ import annotations

import json
import os
import tomllib
from urllib.parse import urlsplit

from .paths import config_dir

FILE_TOML = "trusted-servers.toml"
FILE_JSON = "trusted-servers.json"
MAX_BYTES = 1 << 20
"""A trust file bigger than this is not read (nothing is trusted, and the CLI says so)."""
DEFAULT_PORTS = {"http": 80, "https": 443}
HEADER = ("# MLflow tracking servers octostore may contact and send your MLflow credentials to\n"
          "# (scheme, host and port). Managed by `octostore remote trust/untrust`.\n")


class TrustFileError(ValueError):
    """The trust file cannot be read or written; ``str()`` is one sentence with what to do."""




def trust_path() -> str:
    """The file :func:`trust` writes: the ``.json`` one when only that exists, else ``.toml``."""
    folder = config_dir()
    toml_p, json_p = os.path.join(folder, FILE_TOML), os.path.join(folder, FILE_JSON)
    return json_p if os.path.exists(json_p) and not os.path.exists(toml_p) else toml_p


def server_key(uri: str) -> str | None:
    """``scheme://host:port`` of an http(s) URI (lowercase, default port filled in, user info,
    path and query dropped), or None when it is not one."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


def origin(uri: str) -> str:
    """What to show and to type: ``scheme://host[:port]`` (the port only when not the default)."""
    key = server_key(uri)
    if key is None:
        return uri.strip()
    scheme, _, rest = key.partition("://")
    host, _, port = rest.rpartition(":")
    return f"{scheme}://{host}" + ("" if int(port) == DEFAULT_PORTS[scheme] else f":{port}")


def _read(path: str) -> list[str]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not os.path.isfile(path) or os.fstat(f.fileno()).st_size > MAX_BYTES:
            raise TrustFileError(f"{path} is not a regular file under {MAX_BYTES >> 20} MB; "
                                 "remove it and trust your servers again")
        raw = f.read(MAX_BYTES + 1)
    try:
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustFileError(f"{path} cannot be read ({exc}); fix it or remove it and trust "
                             "your servers again") from None
    servers = data.get("servers", []) if isinstance(data, dict) else None
    if not isinstance(servers, list):
        raise TrustFileError(f"{path}: 'servers' must be a list of URIs; fix it or remove it")
    return [s for s in servers if isinstance(s, str)]


def trusted_servers() -> set[str]:
    """The :func:`server_key` of every trusted server.

    Raises:
        TrustFileError: a trust file exists but cannot be read.
    """
    out: set[str] = set()
    for _path, servers in _files():
        out.update(k for k in map(server_key, servers) if k)
    return out


def _files() -> list[tuple[str, list[str]]]:
    """(path, servers) of each trust file there is (TOML, then JSON)."""
    found = []
    for name in (FILE_TOML, FILE_JSON):
        path = os.path.join(config_dir(), name)
        try:
            found.append((path, _read(path)))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TrustFileError(f"cannot read {path} ({exc.strerror}); check its "
                                 "permissions") from None
    return found


def is_trusted(uri: str) -> bool:
    """True when the user trusts the server of ``uri`` (an unreadable trust file trusts none)."""
    key = server_key(uri)
    if key is None:
        return False
    try:
        return key in trusted_servers()
    except TrustFileError:
        return False


def untrusted_warning(uri: str) -> str:
    """The one sentence a source shows for a server the user has not trusted."""
    o = origin(uri)
    return (f"the repo names the tracking server {o}, which you have not trusted; "
            f"run `octostore remote trust {o}` to index it")


def _write(path: str, servers: list[str]) -> None:
    """Write ``servers`` to ``path`` (TOML or JSON by its name) atomically, 0600."""
    from .atomicfile import atomic_write

    if path.endswith(".json"):
        text = json.dumps({"servers": servers}, indent=2) + "\n"
    else:
        body = "".join(f"  {json.dumps(s)},\n" for s in servers)
        text = HEADER + (f"servers = [\n{body}]\n" if servers else "servers = []\n")
    try:
        atomic_write(path, text.encode("utf-8"), 0o600, folder_mode=0o700)
    except OSError as exc:
        raise TrustFileError(f"cannot write {path} ({exc.strerror}); check the folder's "
                             "permissions") from None


def _current() -> list[str]:
    path = trust_path()
    try:
        return _read(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TrustFileError(f"cannot read {path} ({exc.strerror}); check its permissions"
                             ) from None


def trust(uri: str) -> bool:
    """Trust the server of ``uri`` (written atomically, 0600); False when it already was.

    Raises:
        TrustFileError: not an http(s) URI, or the file cannot be read or written.
    """
    key = server_key(uri)
    if key is None:
        raise TrustFileError(f"{uri!r} is not an http:// or https:// server; give one like "
                             "https://mlflow.example.com")
    if key in trusted_servers():
        return False
    _write(trust_path(), [*_current(), origin(uri)])
    return True


def untrust(uri: str) -> bool:
    """Stop trusting the server of ``uri`` (every entry with its scheme, host and port, in
    both files); False when it was not trusted."""
    key = server_key(uri)
    if key is None:
        raise TrustFileError(f"{uri!r} is not an http:// or https:// server; give one like "
                             "https://mlflow.example.com")
    removed = False
    for path, servers in _files():
        keep = [s for s in servers if server_key(s) != key]
        if len(keep) != len(servers):
            removed = True
            _write(path, keep)
    return removed

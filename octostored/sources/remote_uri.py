"""A tracking server's URI and the credentials it may hold: which URIs are servers, the
URI as it may be shown (:func:`scrub_uri`), and scrubbing secrets out of any text
(:class:`Scrubber`).  Standard library only."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

_SECRET_VARS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")


def is_remote_uri(uri: str) -> bool:
    """True for the tracking URIs this module reads (``http://`` and ``https://``)."""
    return uri.strip().lower().startswith(("http://", "https://"))


def _split_userinfo(uri: str) -> tuple[str, str]:
    """(user info, URI without it).  The user info ends at the last ``@`` before any query:
    a password with an unescaped ``/`` or ``@`` must not leak into the host or path."""
    scheme, sep, rest = uri.strip().partition("://")
    if not sep:
        return "", uri.strip()
    head = rest.split("?", 1)[0].split("#", 1)[0]
    if "@" not in head:
        return "", uri.strip()
    at = head.rindex("@")
    return rest[:at], f"{scheme}://{rest[at + 1:]}"


def scrub_uri(uri: str) -> str:
    """``uri`` without ``user:password@``, query string or fragment (tokens hide there)."""
    try:
        parts = urlsplit(_split_userinfo(uri)[1])
    except ValueError:
        return "<unparsable URI>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")


_AUTH = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:basic|bearer|token)\s+)?[^\s'\",}]+")


_TOKEN_PARAM = re.compile(r"(?i)([?&](?:token|access_token|password|api_key)=)[^&\s]+")


class Scrubber:
    """Removes the credentials of one source from any text: URI user info, the password and
    token values themselves (raw, percent-decoded and as a Basic header), auth headers."""

    def __init__(self, uri: str, env: Mapping[str, str]) -> None:
        secrets: set[str] = set()
        info, _ = _split_userinfo(uri)
        user, _, pw = info.partition(":")
        if info:
            secrets.update({info, unquote(info)})
        for v in (pw, unquote(pw) if pw else None):
            if v:
                secrets.add(v)
        if user and pw:
            secrets.add(base64.b64encode(f"{unquote(user)}:{unquote(pw)}".encode()).decode())
        for name in _SECRET_VARS:
            v = env.get(name)
            if v:
                secrets.add(v)
        user_v, pw_v = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        if user_v and pw_v:
            secrets.add(base64.b64encode(f"{user_v}:{pw_v}".encode()).decode())
        # the longest first, so that a secret containing another is replaced whole
        self.secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(r"\1***@", text)
        text = _AUTH.sub(r"\1***", text)
        text = _TOKEN_PARAM.sub(r"\1***", text)
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

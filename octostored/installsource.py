"""Where the running octostore came from, as a requirement another machine can install.

``octostore ci init`` writes a workflow that installs octostore on a CI runner, and
``octostore init`` tells collaborators how to get it; both need a source that exists.
No project named ``octostore`` is on the package index, so a bare ``octostore``
requirement would fail.  The answer comes from how this copy was installed, read from
its PEP 610 record (``direct_url.json`` in the ``octostore`` distribution's metadata):

* a VCS install (``pip install git+https://...``): ``octostore @ git+URL@COMMIT``,
  pinned to the commit that was installed;
* an archive from a remote URL: ``octostore @ URL`` (with its hash when recorded);
* no record at all: an index install (an index served it, so it can serve it again):
  ``octostore==VERSION``;
* a local wheel, folder or editable checkout (or a ``file://`` repository): a path a
  CI runner cannot reach, so there is no requirement; :attr:`InstallSource.problem`
  says so and how to fix it (``--package SPEC``, e.g. a git URL, with one guessed from
  the checkout's ``origin`` when it has one).

An explicit ``--package SPEC`` always wins (:func:`resolve`).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from urllib.parse import unquote, urlsplit, urlunsplit

DIST = "octostore"


@dataclass(frozen=True)
class InstallSource:
    kind: str
    """``override``, ``vcs``, ``url``, ``index``, ``local`` or ``unknown``."""
    requirement: str | None
    """A PEP 508 requirement another machine can install; None when there is none."""
    detail: str
    """Where this copy came from, for people (a URL, a path, a version)."""
    problem: str | None = None
    """One sentence: why there is no requirement and what to do (None when there is one)."""

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def resolve(override: str | None = None, dist: str = DIST,
            flag: str = "--package") -> InstallSource:
    """The source for ``dist`` (this octostore): ``override`` when given, else its record.

    ``flag`` is the option that overrides it, named in :attr:`InstallSource.problem`.
    """
    if override is not None and override.strip():
        return InstallSource("override", override.strip(), f"given with {flag}")
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return InstallSource(
            "unknown", None, "not installed",
            f"this octostore runs from source without being installed, so there is no "
            f"source to name; pass {flag} with one that exists "
            f"(e.g. {flag} 'octostore @ git+https://HOST/OWNER/octostore@COMMIT')")
    text = d.read_text("direct_url.json")
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = {}
    return from_direct_url(record, d.version, dist, flag)


def from_direct_url(record: dict | None, version: str, dist: str = DIST,
                    flag: str = "--package") -> InstallSource:
    """The source a PEP 610 record (None: there was none) describes."""
    if record is None:
        return InstallSource("index", f"{dist}=={version}", f"version {version} from an index")
    url = str(record.get("url") or "")
    scheme = urlsplit(url).scheme.lower()
    subdir = record.get("subdirectory")
    fragment = f"#subdirectory={subdir}" if isinstance(subdir, str) and subdir else ""
    vcs = record.get("vcs_info")
    if isinstance(vcs, dict) and url and scheme != "file":
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        rev = f"@{commit}" if isinstance(commit, str) and commit else ""
        kind = str(vcs.get("vcs") or "git")
        clean = _without_password(url)
        return InstallSource("vcs", f"{dist} @ {kind}+{clean}{rev}{fragment}",
                             f"{kind} {clean}{rev}")
    archive = record.get("archive_info")
    if isinstance(archive, dict) and scheme in ("http", "https"):
        clean = _without_password(url)
        hashes = archive.get("hashes") or {}
        digest = (f"#sha256={hashes['sha256']}" if isinstance(hashes, dict)
                  and isinstance(hashes.get("sha256"), str) and not fragment else "")
        return InstallSource("url", f"{dist} @ {clean}{digest or fragment}", clean)
    path = unquote(urlsplit(url).path) if scheme == "file" else url
    what = ("an editable checkout" if isinstance(record.get("dir_info"), dict)
            and record["dir_info"].get("editable") else
            "a local folder" if isinstance(record.get("dir_info"), dict) else
            "a local git repository" if isinstance(vcs, dict) else "a local file")
    example = _suggest(path, dist) or f"'{dist} @ git+https://HOST/OWNER/octostore@COMMIT'"
    return InstallSource(
        "local", None, path,
        f"this octostore was installed from {what} ({path}), which another machine cannot "
        f"reach; pass {flag} with a source it can reach, e.g. {flag} {example}")


def _without_password(url: str) -> str:
    """``url`` with any ``user:password@`` dropped (PEP 610 allows ``git@`` and ``${VAR}@``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" in userinfo and not userinfo.startswith("${"):
        return urlunsplit(parts._replace(netloc=host))
    return url


def _suggest(path: str, dist: str) -> str | None:
    """A git requirement for the checkout at ``path``: its ``origin`` (https) at its HEAD."""
    if not path or not os.path.isdir(path):
        return None
    try:
        origin = subprocess.run(["git", "-C", path, "remote", "get-url", "origin"],
                                capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    url, commit = origin.stdout.strip(), head.stdout.strip()
    if origin.returncode or head.returncode or not url or not commit:
        return None
    if url.startswith("git@") and ":" in url:  # scp-like: git@github.com:owner/repo.git
        host, rest = url[4:].split(":", 1)
        url = f"https://{host}/{rest}"
    if urlsplit(url).scheme not in ("https", "http", "ssh") or any(c in url for c in "'\" \n"):
        return None
    return f"'{dist} @ git+{_without_password(url)}@{commit}'"

"""Requirement strings (PEP 508) and pip requirements files.

Every format ends up here: pyproject and setup.cfg list PEP 508 strings, and conda's
``pip:`` sub-list and ``python_env.yaml`` hold requirements-file lines (``-r``
included). ``packaging`` would do the PEP 508 part, but the daemon must not depend
on whatever is installed next to it, and the subset needed to *show* an environment
(name, extras, specifier, marker, URL) is small; anything this parser does not
recognise becomes a warning rather than a guess.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ._common import read_text, relative, within

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(
    rf"^(?P<name>{_NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<rest>.*)$", re.DOTALL
)
_CLAUSE = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9_.*+!-]+"
_SPECIFIER = re.compile(rf"^{_CLAUSE}(?:\s*,\s*{_CLAUSE})*$")
_URLISH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git\+|hg\+|svn\+|bzr\+|file:|\.|/|~)")
_ARCHIVE = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._]*?)-(?P<version>[0-9][^-/]*?)"
    r"(?:-[^/]*)?\.(?:whl|tar\.gz|tar\.bz2|tgz|zip)$"
)
# pip's own rule: '#' starts a comment at the start of a line or after whitespace,
# so the '#egg=' fragment of a URL survives.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Per-requirement options (--hash=..., --config-settings ...) follow the requirement.
_TRAILING_OPTION = re.compile(r"\s+--[A-Za-z][A-Za-z-]*(?:[=\s]|$)")

# Options that change where pip looks, not what it installs: kept for display.
_GLOBAL_OPTIONS = {
    "-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links",
    "--trusted-host", "--pre", "--prefer-binary", "--only-binary", "--no-binary",
    "--require-hashes", "--use-feature", "-Z", "--always-unzip", "--config-settings",
}
_INCLUDE = {"-r": "include", "--requirement": "include", "-c": "constraint",
            "--constraint": "constraint", "-e": "editable", "--editable": "editable"}


def parse_requirement(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """One PEP 508 requirement (or a bare URL/path) as ``(package, warning)``.

    The package has ``name`` and ``spec`` (the version specifier, ``""`` if none) and,
    when present, ``extras``, ``marker`` and ``url``. ``package`` is None only when
    nothing usable was found; ``warning`` says what looked wrong.
    """
    text = text.strip()
    if not text:
        return None, "empty requirement"
    if _URLISH.match(text) or _looks_like_archive(text):
        return _url_requirement(text), None
    m = _REQUIREMENT.match(text)
    if m is None:
        return None, f"not a requirement: {text!r}"
    package: dict[str, Any] = {"name": m["name"], "spec": ""}
    if m["extras"] is not None:
        package["extras"] = [e.strip() for e in m["extras"].split(",") if e.strip()]
    rest = m["rest"].strip()
    warning = None
    if rest.startswith("@"):
        # In the URL form the marker must be separated by whitespace (PEP 508),
        # since a URL may itself contain ';'.
        parts = re.split(r"\s+;", rest[1:], maxsplit=1)
        url = parts[0].strip()
        marker = parts[1].strip() if len(parts) > 1 else ""
        if not url:
            warning = f"{m['name']}: '@' without a URL"
        package["url"] = url
    else:
        spec, _, marker = rest.partition(";")
        spec = spec.strip()
        if spec.startswith("(") and spec.endswith(")"):  # the old "name (>=1.0)" form
            spec = spec[1:-1].strip()
        if spec:
            if _SPECIFIER.match(spec):
                spec = re.sub(r"\s+", "", spec)
            else:
                warning = f"{m['name']}: unrecognised version specifier {spec!r}"
        package["spec"] = spec
        marker = marker.strip()
    if marker:
        package["marker"] = marker
    return package, warning


def _looks_like_archive(text: str) -> bool:
    return " " not in text and _ARCHIVE.search(text) is not None and ";" not in text


def _url_requirement(target: str) -> dict[str, Any]:
    """A URL or path requirement: the name comes from ``#egg=`` or the archive file name."""
    name = ""
    spec = ""
    egg = re.search(r"[#&]egg=([^&\s]+)", target)
    if egg:
        name = egg.group(1)
        # An old-style "#egg=name-1.0" carries a version too.
        m = re.match(r"^(.+?)-([0-9][^-]*)$", name)
        if m:
            name, spec = m.group(1), "==" + m.group(2)
    else:
        m = _ARCHIVE.search(target.split("#", 1)[0].split("?", 1)[0])
        if m:
            name = m["name"]
            spec = "==" + m["version"]
    return {"name": name or target, "spec": spec, "url": target}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirements-file lines with comments removed and ``\\``-continuations joined.

    Returns ``(line number of the first physical line, content)`` for non-empty lines.
    """
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = _COMMENT.sub("", pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, _COMMENT.sub("", pending).strip()))
    return out


class RequirementsReader:
    """Parses requirements-file lines into a result record, following ``-r`` one level.

    One reader serves one result: a requirements file, or the pip lines inside a
    conda or python_env YAML file (``base_dir`` is then the YAML file's folder, as pip
    resolves ``-r`` relative to the file that names it).
    """

    def __init__(self, root: str, result: dict[str, Any]) -> None:
        self.root = os.path.abspath(root)
        self.result = result
        self.result.setdefault("includes", [])
        self.result.setdefault("constraints", [])
        self.result.setdefault("options", [])

    def add_lines(self, lines: list[tuple[int, str]], base_dir: str, *, origin: str | None = None,
                  follow: bool = True, unit: str = "line") -> None:
        """Add packages from numbered ``lines``; ``origin`` names an included file.

        ``unit`` names what the numbers count in warnings: lines of a file, or entries
        of a YAML list.
        """
        where = f"{origin}: " if origin else ""
        for number, line in lines:
            at = f"{where}{unit} {number}"
            if line.startswith("-"):
                self._option(line, base_dir, at, follow)
                continue
            requirement = _TRAILING_OPTION.split(line, maxsplit=1)[0]
            package, warning = parse_requirement(requirement)
            if warning:
                self.result["warnings"].append(f"{at}: {warning}")
            if package is not None:
                if origin:
                    package["from"] = origin
                self.result["packages"].append(package)

    def _option(self, line: str, base_dir: str, at: str, follow: bool) -> None:
        option, value = _split_option(line)
        kind = _INCLUDE.get(option)
        if kind is None:
            if option in _GLOBAL_OPTIONS:
                self.result["options"].append(line)
            else:
                self.result["warnings"].append(f"{at}: unknown option {option}")
            return
        if not value:
            self.result["warnings"].append(f"{at}: {option} needs an argument")
            return
        if kind == "editable":
            package = _url_requirement(value)
            package["editable"] = True
            self.result["packages"].append(package)
        elif kind == "constraint":
            self.result["constraints"].append(value)
        elif not follow:
            self.result["warnings"].append(
                f"{at}: nested include {value} not followed (includes are followed one level deep)"
            )
        else:
            self.include(value, base_dir, at)

    def include(self, target: str, base_dir: str, context: str) -> None:
        """Parse the requirements file ``target`` (relative to ``base_dir``) into the result."""
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
            self.result["warnings"].append(f"{context}: remote include {target} not followed")
            return
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(target)))
        if not within(self.root, path):
            self.result["warnings"].append(
                f"{context}: include {target} is outside the project; not followed"
            )
            return
        rel = relative(self.root, path)
        if not os.path.exists(path):  # a FIFO or folder is refused by read_text, by name
            self.result["warnings"].append(f"{context}: included file {rel} not found")
            return
        probe: dict[str, Any] = {"warnings": []}
        text = read_text(path, probe)
        for warning in probe["warnings"]:
            self.result["warnings"].append(f"{rel}: {warning}")
        if text is None:
            return
        self.result["includes"].append(rel)
        self.add_lines(logical_lines(text), os.path.dirname(path), origin=rel, follow=False)


def _split_option(line: str) -> tuple[str, str]:
    """``-r x``, ``-rx``, ``--requirement=x``, ``--requirement x`` -> (option, value)."""
    if line.startswith("--"):
        head, sep, value = line.partition("=")
        if sep and " " not in head:
            return head, value.strip()
        head, _, value = line.partition(" ")
        return head, value.strip()
    head, _, value = line.partition(" ")
    if len(head) > 2:  # "-rfile" (pip accepts the value glued to a short option)
        return head[:2], (head[2:] + " " + value).strip()
    return head, value.strip()


def parse_requirements_file(root: str, relpath: str, result: dict[str, Any]) -> None:
    """Fill ``result`` from the requirements file ``relpath`` under ``root``."""
    path = os.path.join(root, relpath)
    text = read_text(path, result)
    reader = RequirementsReader(root, result)
    if text is None:
        return
    reader.add_lines(logical_lines(text), os.path.dirname(os.path.abspath(path)))

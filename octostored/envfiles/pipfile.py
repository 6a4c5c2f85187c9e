"""Pipfile (pipenv's project file): what it declares, and the pip lines that install it.

A Pipfile is TOML: ``[[source]]`` package indexes (the first is the default one),
``[packages]`` (what the project runs with), ``[dev-packages]`` and any other
package category (kept apart, in ``groups``), ``[requires]`` ``python_version`` /
``python_full_version``, and ``[pipenv]`` options (``allow_prereleases``).  A package
is ``"*"``, a specifier (``"==1.2"``, ``">=2"``) or a table with ``version``,
``extras``, ``markers``, PEP 508 marker keys (``sys_platform = "== 'win32'"``),
``index`` (a source's name), ``git``/``ref``/``subdirectory``, ``path``/``file`` and
``editable``.

:func:`parse_pipfile` fills an env-file record (the daemon shows it);
:func:`requirement_lines` turns that record into pip requirement lines (a reproduction
installs them when a Pipfile is the project's environment and there is no
``Pipfile.lock``).  Standard library only, never raises on a bad file: what it cannot
understand becomes a warning.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from ._common import read_text

SECTIONS = ("packages", "dev-packages")
NOT_CATEGORIES = frozenset({"source", "requires", "pipenv", "scripts", "packages",
                            "dev-packages"})
"""Top-level tables that are not package categories (pipenv 2023 allows custom ones)."""
MARKER_KEYS = ("os_name", "sys_platform", "platform_machine", "platform_python_implementation",
               "platform_release", "platform_system", "platform_version", "python_version",
               "python_full_version", "implementation_name", "implementation_version")
"""PEP 508 marker variables a Pipfile package table may hold as keys."""
PYPI = ("https://pypi.org/simple", "https://pypi.python.org/simple")
_OPERATORS = ("==", "!=", "<", ">", "~=", "===")


def parse_pipfile(root: str, relpath: str, result: dict[str, Any]) -> None:
    """Fill ``result`` (see :func:`octostored.envfiles.parse_env_file`) from a Pipfile."""
    result.update({"groups": {}, "sources": [], "indexes": {}, "options": []})
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        result["warnings"].append(f"invalid TOML: {exc}")
        return
    _sources(data.get("source"), result)
    requires = data.get("requires")
    if isinstance(requires, dict):
        python = requires.get("python_full_version") or requires.get("python_version")
        if isinstance(python, (str, int, float)):
            result["python"] = str(python)
    elif requires is not None:
        result["warnings"].append("[requires] should be a table")
    pipenv = data.get("pipenv")
    if isinstance(pipenv, dict) and pipenv.get("allow_prereleases") is True:
        result["options"].append("--pre")
    result["packages"] = _section(data, "packages", result)
    for name, value in data.items():
        if name == "packages" or name in NOT_CATEGORIES - {"dev-packages"}:
            continue
        if isinstance(value, dict):
            result["groups"][name] = _section(data, name, result)


def _sources(value: Any, result: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        result["warnings"].append("[[source]] should be an array of tables")
        return
    for n, source in enumerate(value, 1):
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or not url.strip():
            result["warnings"].append(f"[[source]] {n}: no url")
            continue
        result["sources"].append(url)
        name = source.get("name")
        result["indexes"][str(name) if isinstance(name, str) else f"source{n}"] = url


def _section(data: dict[str, Any], name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    section = data.get(name)
    if section is None:
        return []
    if not isinstance(section, dict):
        result["warnings"].append(f"[{name}] should be a table")
        return []
    out = []
    for pkg_name, value in section.items():
        package = _package(str(pkg_name), value, f"[{name}] {pkg_name}", result)
        if package is not None:
            out.append(package)
    return out


def _package(name: str, value: Any, at: str, result: dict[str, Any]) -> dict[str, Any] | None:
    package: dict[str, Any] = {"name": name, "spec": ""}
    if isinstance(value, str):
        package["spec"] = _spec(value, at, result)
        return package
    if not isinstance(value, dict):
        result["warnings"].append(f"{at}: unexpected value {value!r}")
        return None
    version = value.get("version")
    if isinstance(version, str):
        package["spec"] = _spec(version, at, result)
    extras = value.get("extras")
    if isinstance(extras, list):
        package["extras"] = [str(e) for e in extras]
    markers = [value["markers"].strip()] if isinstance(value.get("markers"), str) else []
    for key in MARKER_KEYS:
        cond = value.get(key)
        if isinstance(cond, str) and cond.strip():
            cond = cond.strip()
            # "== 'win32'" is the usual form; a bare value means equality.
            markers.append(f"{key} {cond}" if cond.startswith(_OPERATORS + ("in", "not"))
                           else f"{key} == {cond!r}")
    if markers:
        package["marker"] = " and ".join(f"({m})" if " or " in m else m for m in markers)
    if isinstance(value.get("git"), str):
        url = value["git"]
        url = url if url.startswith("git+") else "git+" + url
        if isinstance(value.get("ref"), str):
            url += "@" + value["ref"]
        if isinstance(value.get("subdirectory"), str):
            url += "#subdirectory=" + value["subdirectory"]
        package["url"] = url
    for key in ("path", "file"):
        if isinstance(value.get(key), str):
            package["url"] = value[key]
            package["local"] = key == "path"
    if value.get("editable") is True:
        package["editable"] = True
    if isinstance(value.get("index"), str):
        package["index"] = value["index"]
    return package


def _spec(text: str, at: str, result: dict[str, Any]) -> str:
    text = text.strip()
    if text in ("*", ""):
        return ""
    if not text.startswith(_OPERATORS):
        if text[:1].isdigit():  # pipenv reads a bare version as ==
            return "==" + text
        result["warnings"].append(f"{at}: unrecognised version {text!r}")
    return text.replace(" ", "")


def requirement_lines(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The pip requirement lines that install a Pipfile record's ``[packages]``, and notes.

    The first ``[[source]]`` becomes ``--index-url`` (unless it is PyPI), the sources that
    packages name with ``index`` become ``--extra-index-url``; a ``path`` package stays a
    local path (``-e path`` when editable) for the caller to put on ``PYTHONPATH``.
    ``[dev-packages]`` are not installed (pipenv installs them only with ``--dev``).
    """
    indexes: dict[str, str] = record.get("indexes") or {}
    options: list[str] = list(record.get("options") or [])
    notes: list[str] = []
    urls = list(indexes.values())
    if urls and urls[0].rstrip("/") not in PYPI:
        options.append(f"--index-url {urls[0]}")
    lines: list[str] = []
    for p in record.get("packages") or []:
        marker = f"; {p['marker']}" if p.get("marker") else ""
        extras = f"[{','.join(p['extras'])}]" if p.get("extras") else ""
        index = p.get("index")
        if index:
            url = indexes.get(index)
            if url is None:
                notes.append(f"{p['name']}: index {index!r} is not a [[source]] of the Pipfile; "
                             "the default index is used")
            elif url != (urls[0] if urls else None):
                option = f"--extra-index-url {url}"
                if option not in options:
                    options.append(option)
        if p.get("url"):
            url = p["url"]
            if p.get("local"):
                lines.append(f"-e {url}" if p.get("editable") else url)
            else:
                lines.append(f"{p['name']}{extras} @ {url}" + (f" {marker}" if marker else ""))
            continue
        lines.append(f"{p['name']}{extras}{p.get('spec') or ''}{marker}")
    skipped = sum(len(v) for v in (record.get("groups") or {}).values())
    if skipped:
        notes.append(f"{skipped} package(s) of the Pipfile's other sections "
                     f"({', '.join(record['groups'])}) are not installed, as `pipenv install` "
                     "without --dev does")
    return options + lines, notes

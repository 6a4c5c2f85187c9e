"""Project descriptions: pyproject.toml, Pipfile, setup.cfg and .python-version.

These state what a project *asks for* (ranges, extras, groups), as opposed to the
lock files in :mod:`.locks`, which state what was resolved. ``packages`` holds the
runtime dependencies only; optional extras and dependency groups are kept apart
(``optional``, ``groups``) because they are not part of every install.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from ._common import read_text
from .requirements import RequirementsReader, parse_requirement


def load_toml(root: str, relpath: str, result: dict[str, Any]) -> dict[str, Any] | None:
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        result["warnings"].append(f"invalid TOML: {exc}")
        return None


def _table(data: dict[str, Any], dotted: str, result: dict[str, Any]) -> dict[str, Any]:
    """``data[a][b]...`` for ``"a.b"`` if it is a table; warns if it is something else."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return {}
        node = node.get(part)
        if node is None:
            return {}
    if not isinstance(node, dict):
        result["warnings"].append(f"[{dotted}] should be a table")
        return {}
    return node


def _pep508_list(value: Any, what: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """A list of PEP 508 strings as package records, with a warning per bad entry."""
    if value is None:
        return []
    if not isinstance(value, list):
        result["warnings"].append(f"{what} should be a list of requirement strings")
        return []
    out = []
    for item in value:
        if not isinstance(item, str):
            result["warnings"].append(f"{what}: skipped a non-string entry {item!r}")
            continue
        package, warning = parse_requirement(item)
        if warning:
            result["warnings"].append(f"{what}: {warning}")
        if package is not None:
            out.append(package)
    return out


# -- pyproject.toml --------------------------------------------------------


def parse_pyproject(root: str, relpath: str, result: dict[str, Any]) -> None:
    result.update({"name": None, "version": None, "optional": {}, "groups": {},
                   "build_requires": [], "includes": [], "constraints": [], "options": []})
    data = load_toml(root, relpath, result)
    if data is None:
        return
    project = _table(data, "project", result)
    if project:
        result["name"] = _str_or_none(project.get("name"))
        result["version"] = _str_or_none(project.get("version"))
        requires_python = project.get("requires-python")
        if requires_python is not None:
            if isinstance(requires_python, str):
                result["python"] = requires_python.strip() or None
            else:
                result["warnings"].append("requires-python should be a string")
        result["packages"] += _pep508_list(project.get("dependencies"), "dependencies", result)
        extras = project.get("optional-dependencies") or {}
        if isinstance(extras, dict):
            for extra, deps in extras.items():
                result["optional"][extra] = _pep508_list(
                    deps, f"optional-dependencies.{extra}", result
                )
        else:
            result["warnings"].append("optional-dependencies should be a table")
        dynamic = project.get("dynamic") or []
        if isinstance(dynamic, list) and "dependencies" in dynamic:
            _dynamic_dependencies(root, relpath, data, result)

    build = _table(data, "build-system", result)
    result["build_requires"] = _pep508_list(build.get("requires"), "build-system.requires",
                                            result)

    groups = data.get("dependency-groups")
    if isinstance(groups, dict):
        for group in groups:
            result["groups"][group] = _dependency_group(groups, group, result, ())
    elif groups is not None:
        result["warnings"].append("[dependency-groups] should be a table")

    uv_dev = _table(data, "tool.uv", result).get("dev-dependencies")
    if uv_dev is not None:
        result["groups"].setdefault("dev", []).extend(
            _pep508_list(uv_dev, "tool.uv.dev-dependencies", result))

    poetry = _table(data, "tool.poetry", result)
    if poetry:
        _poetry(poetry, result)


def _dependency_group(groups: dict[str, Any], name: str, result: dict[str, Any],
                      seen: tuple[str, ...]) -> list[dict[str, Any]]:
    """A PEP 735 group with its ``{include-group = ...}`` entries expanded."""
    entries = groups.get(name)
    if not isinstance(entries, list):
        result["warnings"].append(f"dependency-groups.{name} should be a list")
        return []
    out: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, dict) and "include-group" in entry:
            included = entry["include-group"]
            if included in seen or included == name:
                result["warnings"].append(f"dependency-groups.{name}: include cycle via {included}")
            elif included not in groups:
                result["warnings"].append(f"dependency-groups.{name}: no group {included!r}")
            else:
                out += _dependency_group(groups, included, result, (*seen, name))
        else:
            out += _pep508_list([entry], f"dependency-groups.{name}", result)
    return out


def _dynamic_dependencies(root: str, relpath: str, data: dict[str, Any],
                          result: dict[str, Any]) -> None:
    """Follow setuptools' ``dynamic.dependencies = {file = [...]}``; else say they are dynamic."""
    spec = _table(data, "tool.setuptools.dynamic", result).get("dependencies")
    files = spec.get("file") if isinstance(spec, dict) else None
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files:
        result["warnings"].append(
            "dependencies are dynamic (computed by the build backend), so not listed here"
        )
        return
    reader = RequirementsReader(root, result)
    base_dir = os.path.dirname(os.path.join(os.path.abspath(root), relpath))
    for file in files:
        if isinstance(file, str):
            reader.include(file, base_dir, "tool.setuptools.dynamic.dependencies")


def _poetry(poetry: dict[str, Any], result: dict[str, Any]) -> None:
    if result["name"] is None:
        result["name"] = _str_or_none(poetry.get("name"))
    if result["version"] is None:
        result["version"] = _str_or_none(poetry.get("version"))
    deps = poetry.get("dependencies") or {}
    if not isinstance(deps, dict):
        result["warnings"].append("[tool.poetry.dependencies] should be a table")
        deps = {}
    extras = poetry.get("extras") if isinstance(poetry.get("extras"), dict) else {}
    for name, value in deps.items():
        if name.lower() == "python":
            # Poetry states the interpreter as a dependency; [project] wins if both do.
            spec = _poetry_spec(name, value, result).get("spec")
            if result["python"] is None and spec:
                result["python"] = spec
            continue
        package = _poetry_spec(name, value, result)
        if package.pop("optional", False):
            # Optional poetry dependencies only install through the extras naming them.
            wanted_by = [extra for extra, names in extras.items()
                         if isinstance(names, list) and name.lower() in
                         {str(n).lower() for n in names}]
            for extra in wanted_by or ["optional"]:
                result["optional"].setdefault(extra, []).append(dict(package))
        else:
            result["packages"].append(package)
    dev = poetry.get("dev-dependencies")
    if isinstance(dev, dict):
        result["groups"]["dev"] = [_poetry_spec(n, v, result) for n, v in dev.items()]
    groups = poetry.get("group") or {}
    if isinstance(groups, dict):
        for group, table in groups.items():
            g_deps = table.get("dependencies") if isinstance(table, dict) else None
            if isinstance(g_deps, dict):
                result["groups"].setdefault(group, []).extend(
                    _poetry_spec(n, v, result) for n, v in g_deps.items())
            else:
                result["warnings"].append(f"[tool.poetry.group.{group}] has no dependencies table")


def _poetry_spec(name: str, value: Any, result: dict[str, Any]) -> dict[str, Any]:
    """A poetry dependency (``"^1.2"``, ``{version=..., extras=...}`` or a list of those)."""
    package: dict[str, Any] = {"name": name, "spec": ""}
    if isinstance(value, str):
        package["spec"] = "" if value.strip() == "*" else value.strip()
        return package
    if isinstance(value, list):
        # Several constraints, each for some python/platform: show them all.
        specs = [_poetry_spec(name, v, result).get("spec", "") for v in value]
        package["spec"] = " || ".join(s for s in specs if s)
        return package
    if not isinstance(value, dict):
        result["warnings"].append(f"poetry dependency {name}: unexpected value {value!r}")
        return package
    version = value.get("version")
    if isinstance(version, str) and version.strip() != "*":
        package["spec"] = version.strip()
    for source in ("git", "url", "path"):
        if isinstance(value.get(source), str):
            package["url"] = value[source]
    if value.get("extras"):
        package["extras"] = [str(e) for e in value["extras"]] if isinstance(
            value["extras"], list) else [str(value["extras"])]
    if isinstance(value.get("markers"), str):
        package["marker"] = value["markers"]
    if value.get("develop"):
        package["editable"] = True
    if value.get("optional"):
        package["optional"] = True
    return package


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- Pipfile ---------------------------------------------------------------


def parse_pipfile(root: str, relpath: str, result: dict[str, Any]) -> None:
    result.update({"groups": {}, "sources": []})
    data = load_toml(root, relpath, result)
    if data is None:
        return
    requires = _table(data, "requires", result)
    python = requires.get("python_full_version") or requires.get("python_version")
    if python is not None:
        result["python"] = str(python)
    result["packages"] = _pipfile_section(_table(data, "packages", result), result)
    dev = _table(data, "dev-packages", result)
    if dev:
        result["groups"]["dev-packages"] = _pipfile_section(dev, result)
    sources = data.get("source") or []
    if isinstance(sources, list):
        result["sources"] = [s["url"] for s in sources
                             if isinstance(s, dict) and isinstance(s.get("url"), str)]


def _pipfile_section(section: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in section.items():
        package: dict[str, Any] = {"name": name, "spec": ""}
        if isinstance(value, str):
            package["spec"] = "" if value.strip() == "*" else value.strip()
        elif isinstance(value, dict):
            version = value.get("version")
            if isinstance(version, str) and version.strip() != "*":
                package["spec"] = version.strip()
            for source in ("git", "file", "path"):
                if isinstance(value.get(source), str):
                    package["url"] = value[source]
            if isinstance(value.get("extras"), list):
                package["extras"] = [str(e) for e in value["extras"]]
            if isinstance(value.get("markers"), str):
                package["marker"] = value["markers"]
            if value.get("editable"):
                package["editable"] = True
        else:
            result["warnings"].append(f"Pipfile package {name}: unexpected value {value!r}")
            continue
        out.append(package)
    return out


# -- setup.cfg -------------------------------------------------------------


def parse_setup_cfg(root: str, relpath: str, result: dict[str, Any]) -> None:
    import configparser  # only setup.cfg needs it

    result.update({"name": None, "optional": {}, "includes": [], "constraints": [],
                   "options": []})
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return
    # No interpolation: setup.cfg values may contain '%' (URLs, markers).
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=relpath)
    except configparser.Error as exc:
        result["warnings"].append(f"invalid setup.cfg: {str(exc).splitlines()[0]}")
        return
    if parser.has_option("metadata", "name"):
        result["name"] = parser.get("metadata", "name").strip() or None
    if not parser.has_section("options"):
        return
    options = parser["options"]
    if "python_requires" in options:
        result["python"] = options["python_requires"].strip() or None
    if "install_requires" in options:
        value = options["install_requires"]
        if value.strip().startswith("file:"):
            reader = RequirementsReader(root, result)
            base_dir = os.path.dirname(os.path.join(os.path.abspath(root), relpath))
            for file in value.strip()[5:].split(","):
                if file.strip():
                    reader.include(file.strip(), base_dir, "install_requires")
        else:
            result["packages"] += _pep508_list(_cfg_list(value), "install_requires", result)
    if parser.has_section("options.extras_require"):
        for extra, value in parser["options.extras_require"].items():
            result["optional"][extra] = _pep508_list(
                _cfg_list(value), f"extras_require.{extra}", result)


def _cfg_list(value: str) -> list[str]:
    """setuptools' list rule: one item per line, or ';'-separated on a single line."""
    lines = [line.strip() for line in value.splitlines() if line.strip()]
    if len(lines) == 1 and ";" in lines[0]:
        return [part.strip() for part in lines[0].split(";") if part.strip()]
    return lines


# -- .python-version -------------------------------------------------------


def parse_python_version(root: str, relpath: str, result: dict[str, Any]) -> None:
    result["versions"] = []
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return
    # pyenv allows several versions, one per line (the first wins), and '#' comments.
    versions = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            versions += line.split()
    if not versions:
        result["warnings"].append("empty file")
        return
    result["versions"] = versions
    result["python"] = versions[0]

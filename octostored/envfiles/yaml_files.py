"""The YAML env files: conda environments, MLproject and python_env.yaml.

These are the files MLflow itself reads to rebuild a run's environment (``mlflow
run`` and model serving), so they are reported the way MLflow interprets them: an
MLproject's environment defaults to a sibling python_env.yaml, then conda.yaml, and
the pip lines inside conda and python_env files are requirements-file lines whose
``-r`` is relative to the YAML file.

YAML is read with PyYAML's safe loader (C when built with libyaml), imported on the first
YAML file.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ._common import plain, read_text
from .requirements import RequirementsReader

_CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9._-]*)\s*(?P<rest>.*)$")


class YamlError(ValueError):
    """A YAML file that does not parse: the message says where and what."""


def load_yaml(text: str) -> Any:
    """Parse YAML text; raises :class:`YamlError`."""
    import yaml  # PyYAML, a dependency: loaded on the first YAML file, not at start

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(f"{where}{problem}") from None


def _load_mapping(root: str, relpath: str, result: dict[str, Any]) -> dict[str, Any] | None:
    """The file's top-level mapping, or None with a warning."""
    loaded = _load_text_and_mapping(root, relpath, result)
    return loaded[1] if loaded else None


def _load_text_and_mapping(root: str, relpath: str,
                           result: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    text = read_text(os.path.join(root, relpath), result)
    if text is None:
        return None
    try:
        data = load_yaml(text)
    except (YamlError, RecursionError) as exc:
        result["warnings"].append(f"invalid YAML: {exc}")
        return None
    if data is None:
        result["warnings"].append("empty file")
        return None
    if not isinstance(data, dict):
        result["warnings"].append(f"expected a mapping at the top, found a {_kind(data)}")
        return None
    return text, data


def _kind(value: Any) -> str:
    return {list: "list", str: "string", dict: "mapping"}.get(type(value), type(value).__name__)


def _string_list(value: Any, what: str, result: dict[str, Any]) -> list[str]:
    """``value`` as a list of strings; other shapes give a warning and are skipped."""
    if value is None:
        return []
    if not isinstance(value, list):
        result["warnings"].append(f"{what} should be a list, not a {_kind(value)}")
        return []
    out = []
    for item in value:
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            out.append(str(item))
        else:
            result["warnings"].append(f"{what}: skipped a {_kind(item)} entry")
    return out


def _python_scalar(value: Any, field: str, text_hint: str | None,
                   result: dict[str, Any]) -> str | None:
    """A python version written as a YAML scalar; warns when YAML read it as a number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        result["warnings"].append(f"{field} should be a version string, not a {_kind(value)}")
        return None
    if isinstance(value, str):
        return value.strip() or None
    # Unquoted, "3.10" is the number 3.1: recover what was written, and say so.
    written = text_hint or str(value)
    result["warnings"].append(
        f"{field}: {written} is a YAML number; quote it (\"{written}\") so that it stays a version"
    )
    return written


# -- conda -----------------------------------------------------------------


def parse_conda_spec(spec: str) -> dict[str, Any] | None:
    """A conda match spec (``numpy=1.24``, ``conda-forge::numpy >=1.2``) as a package record."""
    spec = spec.strip()
    channel = None
    if "::" in spec:
        channel, spec = spec.split("::", 1)
    m = _CONDA_SPEC.match(spec)
    if m is None:
        return None
    package: dict[str, Any] = {"name": m["name"], "spec": " ".join(m["rest"].split()),
                               "manager": "conda"}
    if channel:
        package["channel"] = channel
    return package


def _conda_python(spec: str) -> str:
    """conda's python spec as a version requirement: ``=3.11`` and ``3.11`` mean 3.11.*."""
    spec = spec.strip()
    if spec.startswith("=") and not spec.startswith("=="):
        spec = spec[1:]
    # Drop a build string ("3.11.7=h955ad1f_0" or "3.11.7 h955ad1f_0").
    if not spec.startswith("=="):
        spec = re.split(r"[= ]", spec, maxsplit=1)[0]
    return spec


def parse_conda(root: str, relpath: str, result: dict[str, Any]) -> None:
    result.update({"name": None, "channels": [], "includes": [], "constraints": [],
                   "options": []})
    data = _load_mapping(root, relpath, result)
    if data is None:
        return
    name = data.get("name")
    result["name"] = str(name) if name is not None else None
    result["channels"] = _string_list(data.get("channels"), "channels", result)
    deps = data.get("dependencies")
    if deps is None:
        result["warnings"].append("no dependencies listed")
        return
    if not isinstance(deps, list):
        result["warnings"].append(f"dependencies should be a list, not a {_kind(deps)}")
        return
    reader = RequirementsReader(root, result)
    base_dir = os.path.dirname(os.path.join(os.path.abspath(root), relpath))
    has_pip = False
    pip_lists = 0
    for item in deps:
        if isinstance(item, dict):
            if set(item) == {"pip"}:
                pip_lists += 1
                lines = _string_list(item["pip"], "pip", result)
                # conda writes the pip list to a requirements file and runs pip on it,
                # so each entry is a requirements-file line, -r included.
                numbered = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
                before = len(result["packages"])
                reader.add_lines(numbered, base_dir, unit="pip entry")
                for package in result["packages"][before:]:
                    package.setdefault("manager", "pip")
            else:
                result["warnings"].append(
                    f"dependencies: unsupported entry {sorted(map(str, item))}")
            continue
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            result["warnings"].append(f"dependencies: skipped a {_kind(item)} entry")
            continue
        package = parse_conda_spec(str(item))
        if package is None:
            result["warnings"].append(f"dependencies: not a conda package spec: {item!r}")
            continue
        if package["name"].lower() == "python":
            result["python"] = _conda_python(package["spec"]) or None
        if package["name"].lower() == "pip":
            has_pip = True
        result["packages"].append(package)
    if pip_lists and not has_pip:
        result["warnings"].append("a pip: list without pip among the conda dependencies")


# -- MLproject -------------------------------------------------------------

_ENV_KEYS = ("python_env", "conda_env", "docker_env")


def parse_mlproject(root: str, relpath: str, result: dict[str, Any]) -> None:
    result.update({"name": None, "env": None, "entry_points": {}})
    data = _load_mapping(root, relpath, result)
    if data is None:
        return
    name = data.get("name")
    result["name"] = str(name) if name is not None else None

    declared = [key for key in _ENV_KEYS if key in data]
    if len(declared) > 1:
        # MLflow refuses such a project ("cannot contain multiple environment fields").
        result["warnings"].append(f"several environments declared: {', '.join(declared)}")
    if declared:
        key = declared[0]
        value = data[key]
        if key == "docker_env":
            image = value.get("image") if isinstance(value, dict) else None
            if not image:
                result["warnings"].append("docker_env has no image")
            result["env"] = {"kind": key, "image": plain(image)}
        elif isinstance(value, str) and value.strip():
            result["env"] = {"kind": key, "path": _sibling(relpath, value.strip())}
        else:
            result["warnings"].append(f"{key} should name a file")
    else:
        # MLflow's defaults when nothing is declared: python_env.yaml, then conda.yaml.
        folder = os.path.join(root, os.path.dirname(relpath))
        for kind, file_name in (("python_env", "python_env.yaml"), ("conda_env", "conda.yaml")):
            if os.path.isfile(os.path.join(folder, file_name)):
                result["env"] = {"kind": kind, "path": _sibling(relpath, file_name),
                                 "implicit": True}
                break
    env = result["env"]
    if env and env.get("path") and not os.path.isfile(os.path.join(root, env["path"])):
        result["warnings"].append(f"{env['kind']} file {env['path']} not found")

    entry_points = data.get("entry_points")
    if entry_points is None:
        result["warnings"].append("no entry_points")
        return
    if not isinstance(entry_points, dict):
        result["warnings"].append(f"entry_points should be a mapping, not a {_kind(entry_points)}")
        return
    for ep_name, ep in entry_points.items():
        ep_name = str(ep_name)
        if not isinstance(ep, dict):
            result["warnings"].append(f"entry point {ep_name}: should be a mapping")
            continue
        command = ep.get("command")
        if not isinstance(command, str) or not command.strip():
            result["warnings"].append(f"entry point {ep_name}: no command")
            command = None
        parameters: dict[str, dict[str, Any]] = {}
        raw_params = ep.get("parameters") or {}
        if not isinstance(raw_params, dict):
            result["warnings"].append(f"entry point {ep_name}: parameters should be a mapping")
            raw_params = {}
        for p_name, p_spec in raw_params.items():
            p_name = str(p_name)
            # As MLflow reads it: a bare string is the type; else {type, default}.
            if isinstance(p_spec, str):
                parameters[p_name] = {"type": p_spec, "default": None}
            elif isinstance(p_spec, dict):
                parameters[p_name] = {"type": str(p_spec.get("type", "string")),
                                      "default": plain(p_spec.get("default"))}
            elif p_spec is None:
                parameters[p_name] = {"type": "string", "default": None}
            else:
                result["warnings"].append(
                    f"entry point {ep_name}: parameter {p_name} should be a type or a mapping"
                )
                continue
            if command and "{" + p_name + "}" not in command:
                result["warnings"].append(
                    f"entry point {ep_name}: parameter {p_name} is not used in the command"
                )
        result["entry_points"][ep_name] = {"parameters": parameters, "command": command}


def _sibling(relpath: str, name: str) -> str:
    """``name`` (relative to the MLproject's folder) as a root-relative path."""
    folder = os.path.dirname(relpath)
    return os.path.normpath(os.path.join(folder, name)).replace(os.sep, "/")


# -- python_env.yaml -------------------------------------------------------


def parse_python_env(root: str, relpath: str, result: dict[str, Any]) -> None:
    result.update({"build_dependencies": [], "includes": [], "constraints": [], "options": []})
    loaded = _load_text_and_mapping(root, relpath, result)
    if loaded is None:
        return
    text, data = loaded
    if "python" not in data:
        result["warnings"].append("no python version (MLflow requires one)")
    else:
        hint = re.search(r"^python\s*:\s*([0-9][0-9.]*)\s*(?:#.*)?$", text, re.MULTILINE)
        result["python"] = _python_scalar(data["python"], "python", hint and hint.group(1),
                                          result)
    reader = RequirementsReader(root, result)
    base_dir = os.path.dirname(os.path.join(os.path.abspath(root), relpath))
    # Build dependencies go to their own record so that "packages" is what the
    # project itself needs.
    build: dict[str, Any] = {"packages": [], "warnings": [], "includes": [],
                             "constraints": [], "options": []}
    build_reader = RequirementsReader(root, build)
    build_lines = _string_list(data.get("build_dependencies"), "build_dependencies", result)
    build_reader.add_lines(_numbered(build_lines), base_dir, unit="entry")
    result["build_dependencies"] = build["packages"]
    result["warnings"] += [f"build_dependencies: {w}" for w in build["warnings"]]
    lines = _string_list(data.get("dependencies"), "dependencies", result)
    reader.add_lines(_numbered(lines), base_dir, unit="dependencies entry")


def _numbered(lines: list[str]) -> list[tuple[int, str]]:
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]

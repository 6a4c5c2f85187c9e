"""octostored.envfiles over real files: every kind, includes, malformed input, the demo.

Each test writes its files into a temporary folder and parses them from disk, as
the daemon does. Malformed files must come back as records with warnings, never as
exceptions; the YAML kinds are checked with PyYAML and with the built-in reader.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octostored import envfiles
from octostored.envfiles import (
    ENV_FILE_NAMES,
    env_file_kind,
    environment_summary,
    find_env_files,
    is_env_file,
    parse_env_file,
)

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"


def write(root: Path, relpath: str, text: str | bytes) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        if text.startswith("\n"):  # an indented triple-quoted block
            text = textwrap.dedent(text).lstrip("\n")
        path.write_text(text, encoding="utf-8")
    return path


def pkgs(result: dict[str, Any]) -> dict[str, str]:
    """name -> spec of a record's packages."""
    return {p["name"]: p["spec"] for p in result["packages"]}


def by_name(result: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [p for p in result["packages"] if p["name"] == name]
    assert len(matches) == 1, (name, result["packages"])
    return matches[0]


@pytest.fixture
def yaml_reader() -> str:
    """YAML is read with PyYAML (a dependency; the built-in fallback reader is gone)."""
    return "pyyaml"


# -- which files count ---------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "kind"),
    [
        ("requirements.txt", "requirements"),
        ("requirements-dev.txt", "requirements"),
        ("requirements_test.txt", "requirements"),
        ("requirements.in", "requirements"),
        ("pyproject.toml", "pyproject"),
        ("uv.lock", "uv_lock"),
        ("poetry.lock", "poetry_lock"),
        ("Pipfile", "pipfile"),
        ("Pipfile.lock", "pipfile_lock"),
        ("conda.yaml", "conda"),
        ("environment.yml", "conda"),
        ("environment.yaml", "conda"),
        ("MLproject", "mlproject"),
        ("mlproject", "mlproject"),  # MLflow matches the name case-insensitively
        ("python_env.yaml", "python_env"),
        ("setup.cfg", "setup_cfg"),
        (".python-version", "python_version"),
        ("svc/requirements.txt", "requirements"),
        ("./svc/conda.yaml", "conda"),
        ("requirements/base.txt", "requirements"),
        ("requirements/dev.in", "requirements"),
        (os.path.join("svc", "MLproject"), "mlproject"),
    ],
)
def test_env_file_kinds(relpath: str, kind: str) -> None:
    assert env_file_kind(relpath) == kind
    assert is_env_file(relpath)


@pytest.mark.parametrize(
    "relpath",
    [
        "train.py",
        "README.md",
        "requirements.md",
        "a/b/requirements.txt",  # deeper than the search goes
        ".venv/requirements.txt",
        "node_modules/pyproject.toml",
        "mlruns/conda.yaml",
        ".git/MLproject",
        "svc/base.txt",  # only requirements/ holds arbitrarily named requirement files
        "../requirements.txt",
        "",
        "mlflow.db",
    ],
)
def test_not_env_files(relpath: str) -> None:
    assert not is_env_file(relpath)


def test_env_file_names_cover_the_brief() -> None:
    for name in ("requirements*.txt", "pyproject.toml", "uv.lock", "poetry.lock", "Pipfile",
                 "Pipfile.lock", "conda.yaml", "environment.yml", "environment.yaml",
                 "MLproject", "python_env.yaml", "setup.cfg", ".python-version"):
        assert name in ENV_FILE_NAMES


def test_find_env_files(tmp_path: Path) -> None:
    for rel in ["requirements.txt", "pyproject.toml", "MLproject", ".python-version",
                "train.py", "svc/requirements.txt", "svc/conda.yaml", "svc/notes.txt",
                "requirements/base.txt", "a/b/requirements.txt", ".venv/requirements.txt",
                "node_modules/pkg/pyproject.toml", "mlruns/0/conda.yaml", ".git/Pipfile",
                "myenv/pyvenv.cfg", "myenv/requirements.txt"]:
        write(tmp_path, rel, "x\n")
    outside = tmp_path.parent / (tmp_path.name + "-elsewhere")
    write(outside, "requirements.txt", "x\n")
    (tmp_path / "linked").symlink_to(outside, target_is_directory=True)

    assert find_env_files(tmp_path) == [
        ".python-version", "MLproject", "pyproject.toml", "requirements.txt",
        "requirements/base.txt", "svc/conda.yaml", "svc/requirements.txt",
    ]
    assert find_env_files(str(tmp_path)) == find_env_files(tmp_path)
    assert all(is_env_file(rel) for rel in find_env_files(tmp_path))


def test_find_env_files_missing_root(tmp_path: Path) -> None:
    assert find_env_files(tmp_path / "nope") == []
    assert environment_summary(tmp_path / "nope") == {
        "files": [], "python": [], "pinned": [], "warning_count": 0}


# -- requirements files ----------------------------------------------------------


def test_requirements_file(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", r"""
        # pinned deps
        --index-url https://pypi.example/simple
        numpy==2.1.0  # inline comment
        pandas >= 2.0, <3   ; python_version >= "3.10"
        requests[socks,security]~=2.31
        scikit-learn
        torch==2.4.0 \
            --hash=sha256:abc123 \
            --hash=sha256:def456
        old-style (>=1.0)
        mylib @ https://example.com/mylib-1.0.tar.gz ; sys_platform == "linux"
        git+https://github.com/org/tool.git@v1.2#egg=tool
        https://files.example/pkgs/fancy_pkg-0.3.1-py3-none-any.whl
        -e ./libs/local_pkg
        --editable git+https://github.com/org/dev.git#egg=devpkg
        -c constraints.txt
        -r requirements-base.txt
        """)
    write(tmp_path, "requirements-base.txt", """
        click==8.1.7
        -r requirements-deeper.txt
        """)
    write(tmp_path, "requirements-deeper.txt", "never-read==1\n")

    r = parse_env_file(tmp_path, "requirements.txt")
    assert r["path"] == "requirements.txt"
    assert r["kind"] == "requirements"
    assert r["python"] is None
    specs = pkgs(r)
    assert specs["numpy"] == "==2.1.0"
    assert specs["pandas"] == ">=2.0,<3"
    assert by_name(r, "pandas")["marker"] == 'python_version >= "3.10"'
    assert by_name(r, "requests") == {"name": "requests", "spec": "~=2.31",
                                      "extras": ["socks", "security"]}
    assert specs["scikit-learn"] == ""
    assert specs["torch"] == "==2.4.0"  # --hash options dropped
    assert specs["old-style"] == ">=1.0"
    mylib = by_name(r, "mylib")
    assert mylib["url"] == "https://example.com/mylib-1.0.tar.gz"
    assert mylib["marker"] == 'sys_platform == "linux"'
    assert by_name(r, "tool")["url"] == "git+https://github.com/org/tool.git@v1.2#egg=tool"
    assert specs["fancy_pkg"] == "==0.3.1"
    local = by_name(r, "./libs/local_pkg")
    assert local["editable"] is True
    assert by_name(r, "devpkg")["editable"] is True
    assert by_name(r, "click") == {"name": "click", "spec": "==8.1.7",
                                   "from": "requirements-base.txt"}
    assert "never-read" not in specs  # includes are followed one level only
    assert r["includes"] == ["requirements-base.txt"]
    assert r["constraints"] == ["constraints.txt"]
    assert r["options"] == ["--index-url https://pypi.example/simple"]
    assert len(r["warnings"]) == 1
    assert "nested include requirements-deeper.txt not followed" in r["warnings"][0]
    assert r["warnings"][0].startswith("requirements-base.txt: line 2:")
    assert r["pinned"] is False


def test_requirements_fully_pinned(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "a==1.0\nb===2.0\n-e .\n")
    assert parse_env_file(tmp_path, "requirements.txt")["pinned"] is True
    write(tmp_path, "requirements.txt", "a==1.0\nb==2.*\n")
    assert parse_env_file(tmp_path, "requirements.txt")["pinned"] is False
    write(tmp_path, "requirements.txt", "# nothing\n")
    r = parse_env_file(tmp_path, "requirements.txt")
    assert r["packages"] == [] and r["warnings"] == [] and r["pinned"] is False


def test_requirements_include_forms_and_failures(tmp_path: Path) -> None:
    write(tmp_path, "sub/requirements.txt", """
        -r../common.txt
        --requirement=missing.txt
        -r ../../outside.txt
        -r https://example.com/reqs.txt
        -r
        --frobnicate
        """)
    write(tmp_path, "common.txt", "six==1.16.0\n")
    r = parse_env_file(tmp_path, "sub/requirements.txt")
    assert pkgs(r) == {"six": "==1.16.0"}
    assert r["includes"] == ["common.txt"]
    warnings = "\n".join(r["warnings"])
    assert "line 2: included file sub/missing.txt not found" in warnings
    assert "line 3: include ../../outside.txt is outside the project" in warnings
    assert "line 4: remote include https://example.com/reqs.txt not followed" in warnings
    assert "line 5: -r needs an argument" in warnings
    assert "line 6: unknown option --frobnicate" in warnings


def test_requirements_bad_lines_are_warnings(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", """
        good==1.0
        this is not a requirement
        bad-spec =! 2
        ;;;
        also-good>1
        """)
    r = parse_env_file(tmp_path, "requirements.txt")
    assert pkgs(r)["good"] == "==1.0"
    assert pkgs(r)["also-good"] == ">1"
    assert len(r["warnings"]) == 3
    assert r["warnings"][0].startswith("line 2: this: unrecognised version specifier")
    assert r["warnings"][2].startswith("line 4: not a requirement")


# -- pyproject.toml, setup.cfg, Pipfile, .python-version --------------------------


def test_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", """
        [build-system]
        requires = ["hatchling>=1.20"]
        build-backend = "hatchling.build"

        [project]
        name = "demo"
        version = "0.2.0"
        requires-python = ">=3.11"
        dependencies = [
            "mlflow==3.17.2",
            "scikit-learn>=1.5",
            "tomli; python_version < '3.11'",
        ]

        [project.optional-dependencies]
        plots = ["matplotlib"]

        [dependency-groups]
        test = ["pytest>=8"]
        dev = [{include-group = "test"}, "ruff"]
        """)
    r = parse_env_file(tmp_path, "pyproject.toml")
    assert r["kind"] == "pyproject"
    assert r["name"] == "demo" and r["version"] == "0.2.0"
    assert r["python"] == ">=3.11"
    assert pkgs(r) == {"mlflow": "==3.17.2", "scikit-learn": ">=1.5", "tomli": ""}
    assert by_name(r, "tomli")["marker"] == "python_version < '3.11'"
    assert [p["name"] for p in r["optional"]["plots"]] == ["matplotlib"]
    assert [p["name"] for p in r["groups"]["dev"]] == ["pytest", "ruff"]
    assert [p["name"] for p in r["build_requires"]] == ["hatchling"]
    assert r["warnings"] == []


def test_pyproject_poetry(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", """
        [tool.poetry]
        name = "poetic"
        version = "1.0.0"

        [tool.poetry.dependencies]
        python = "^3.11"
        numpy = "^2.0"
        pandas = {version = ">=2.2", extras = ["performance"]}
        anything = "*"
        mytool = {git = "https://github.com/org/mytool.git", rev = "abc"}
        plotly = {version = "^5", optional = true}

        [tool.poetry.extras]
        viz = ["plotly"]

        [tool.poetry.group.dev.dependencies]
        pytest = "^8.0"
        """)
    r = parse_env_file(tmp_path, "pyproject.toml")
    assert r["name"] == "poetic"
    assert r["python"] == "^3.11"
    assert pkgs(r) == {"numpy": "^2.0", "pandas": ">=2.2", "anything": "",
                       "mytool": ""}
    assert by_name(r, "pandas")["extras"] == ["performance"]
    assert by_name(r, "mytool")["url"] == "https://github.com/org/mytool.git"
    assert [p["name"] for p in r["optional"]["viz"]] == ["plotly"]
    assert [p["name"] for p in r["groups"]["dev"]] == ["pytest"]
    assert r["warnings"] == []


def test_pyproject_dynamic_dependencies(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", """
        [project]
        name = "dyn"
        dynamic = ["dependencies"]

        [tool.setuptools.dynamic]
        dependencies = {file = ["requirements.txt"]}
        """)
    write(tmp_path, "requirements.txt", "attrs==23.2.0\n")
    r = parse_env_file(tmp_path, "pyproject.toml")
    assert by_name(r, "attrs") == {"name": "attrs", "spec": "==23.2.0",
                                   "from": "requirements.txt"}
    write(tmp_path, "pyproject.toml", '[project]\nname = "dyn"\ndynamic = ["dependencies"]\n')
    r = parse_env_file(tmp_path, "pyproject.toml")
    assert r["packages"] == []
    assert "dependencies are dynamic" in r["warnings"][0]


@pytest.mark.parametrize("text", [
    "[project\nname = 'x'\n",
    "[project]\ndependencies = 'numpy'\n",
    "[project]\ndependencies = [1, 'ok==1', 'bad spec']\nrequires-python = 3\n",
    "project = 5\n",
    "[project]\noptional-dependencies = 'x'\n[dependency-groups]\na = [{include-group = 'a'}]\n",
    "[tool.poetry]\ndependencies = [1]\n",
    "[tool.poetry.dependencies]\nx = 5\n[tool.poetry.group.dev]\nfoo = 1\n",
])
def test_pyproject_malformed(tmp_path: Path, text: str) -> None:
    write(tmp_path, "pyproject.toml", text)
    r = parse_env_file(tmp_path, "pyproject.toml")
    assert r["kind"] == "pyproject"
    assert r["warnings"], r
    assert not any(w.startswith("could not be parsed") for w in r["warnings"]), r["warnings"]


def test_setup_cfg(tmp_path: Path) -> None:
    write(tmp_path, "setup.cfg", """
        [metadata]
        name = legacy

        [options]
        python_requires = >=3.9
        install_requires =
            requests>=2
            importlib-metadata; python_version < "3.10"

        [options.extras_require]
        test = pytest
        """)
    r = parse_env_file(tmp_path, "setup.cfg")
    assert r["name"] == "legacy"
    assert r["python"] == ">=3.9"
    assert pkgs(r) == {"requests": ">=2", "importlib-metadata": ""}
    assert by_name(r, "importlib-metadata")["marker"] == 'python_version < "3.10"'
    assert [p["name"] for p in r["optional"]["test"]] == ["pytest"]
    write(tmp_path, "setup.cfg", "install_requires = x\n[options\n")
    r = parse_env_file(tmp_path, "setup.cfg")
    assert r["packages"] == [] and r["warnings"][0].startswith("invalid setup.cfg")


def test_pipfile_and_lock(tmp_path: Path) -> None:
    write(tmp_path, "Pipfile", """
        [[source]]
        url = "https://pypi.org/simple"
        name = "pypi"

        [packages]
        requests = "*"
        numpy = "==2.1.0"
        django = {version = ">=5", extras = ["bcrypt"]}

        [dev-packages]
        pytest = "*"

        [requires]
        python_version = "3.11"
        """)
    r = parse_env_file(tmp_path, "Pipfile")
    assert r["kind"] == "pipfile"
    assert r["python"] == "3.11"
    assert pkgs(r) == {"requests": "", "numpy": "==2.1.0", "django": ">=5"}
    assert [p["name"] for p in r["groups"]["dev-packages"]] == ["pytest"]
    assert r["sources"] == ["https://pypi.org/simple"]

    write(tmp_path, "Pipfile.lock", json.dumps({
        "_meta": {"requires": {"python_version": "3.11"}},
        "default": {"numpy": {"hashes": ["sha256:1"], "version": "==2.1.0"},
                    "requests": {"version": "==2.32.3", "markers": "python_version >= '3.8'"}},
        "develop": {"pytest": {"version": "==8.3.2"}},
    }))
    r = parse_env_file(tmp_path, "Pipfile.lock")
    assert r["python"] == "3.11"
    assert pkgs(r) == {"numpy": "==2.1.0", "requests": "==2.32.3"}
    assert r["pinned"] is True
    assert pkgs({"packages": r["groups"]["develop"]}) == {"pytest": "==8.3.2"}
    write(tmp_path, "Pipfile.lock", '{"default": {"numpy": ')
    r = parse_env_file(tmp_path, "Pipfile.lock")
    assert r["packages"] == [] and r["warnings"][0].startswith("invalid JSON")


def test_python_version_file(tmp_path: Path) -> None:
    write(tmp_path, ".python-version", "3.11.7\n3.10  # fallback\n")
    r = parse_env_file(tmp_path, ".python-version")
    assert r["python"] == "3.11.7" and r["versions"] == ["3.11.7", "3.10"]
    write(tmp_path, ".python-version", "\n# nothing\n")
    r = parse_env_file(tmp_path, ".python-version")
    assert r["python"] is None and r["warnings"] == ["empty file"]


# -- lock files --------------------------------------------------------------------


def test_uv_lock(tmp_path: Path) -> None:
    write(tmp_path, "uv.lock", """
        version = 1
        revision = 2
        requires-python = ">=3.11"

        [[package]]
        name = "demo"
        version = "0.1.0"
        source = { editable = "." }
        dependencies = [{ name = "numpy" }]

        [[package]]
        name = "numpy"
        version = "2.4.6"
        source = { registry = "https://pypi.org/simple" }
        sdist = { url = "https://files.example/numpy-2.4.6.tar.gz", hash = "sha256:00", size = 1 }

        [[package]]
        name = "tool"
        version = "0.3.0"
        source = { git = "https://github.com/org/tool?rev=v0.3#abcdef" }
        """)
    r = parse_env_file(tmp_path, "uv.lock")
    assert r["kind"] == "uv_lock"
    assert r["python"] == ">=3.11"
    assert r["lock_version"] == 1
    assert pkgs(r) == {"demo": "==0.1.0", "numpy": "==2.4.6", "tool": "==0.3.0"}
    assert by_name(r, "demo")["editable"] is True
    assert by_name(r, "tool")["url"].startswith("https://github.com/org/tool")
    assert r["pinned"] is True
    assert r["warnings"] == []


def test_poetry_lock(tmp_path: Path) -> None:
    write(tmp_path, "poetry.lock", """
        [[package]]
        name = "numpy"
        version = "2.1.0"
        description = "Fundamental package for array computing in Python"
        optional = false
        python-versions = ">=3.10"

        [[package]]
        name = "mytool"
        version = "0.1.0"
        optional = false
        python-versions = "*"

        [package.source]
        type = "git"
        url = "https://github.com/org/mytool.git"
        reference = "main"
        resolved_reference = "abc"

        [metadata]
        lock-version = "2.0"
        python-versions = "^3.11"
        content-hash = "00"
        """)
    r = parse_env_file(tmp_path, "poetry.lock")
    assert r["python"] == "^3.11"
    assert r["lock_version"] == "2.0"
    assert pkgs(r) == {"numpy": "==2.1.0", "mytool": "==0.1.0"}
    assert by_name(r, "mytool")["url"] == "https://github.com/org/mytool.git"


@pytest.mark.parametrize("name", ["uv.lock", "poetry.lock"])
def test_locks_malformed(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "[[package]\nname = 'x'\n")
    assert parse_env_file(tmp_path, name)["warnings"][0].startswith("invalid TOML")
    write(tmp_path, name, "package = 3\n[metadata]\n")
    assert "malformed" in parse_env_file(tmp_path, name)["warnings"][0]
    write(tmp_path, name, "[[package]]\nversion = '1'\n[[package]]\nname = 'ok'\n")
    r = parse_env_file(tmp_path, name)
    assert pkgs(r) == {"ok": ""} and "without a name" in r["warnings"][0]
    assert r["pinned"] is False


# -- YAML files (with PyYAML and with the built-in reader) ------------------------


CONDA = """
    name: wine
    channels:
      - conda-forge   # main channel
      - defaults
    dependencies:
      - python=3.11
      - numpy=1.26.4=py311h64a7726_0
      - conda-forge::scikit-learn >=1.5
      - "pandas"
      - pip
      - pip:
          - mlflow==3.17.2
          - -r requirements-extra.txt
          - --extra-index-url https://pypi.example/simple
    """


def test_conda(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "envs/environment.yml", CONDA)
    write(tmp_path, "envs/requirements-extra.txt", "rich==13.7.1\n")
    r = parse_env_file(tmp_path, "envs/environment.yml")
    assert r["kind"] == "conda"
    assert r["name"] == "wine"
    assert r["channels"] == ["conda-forge", "defaults"]
    assert r["python"] == "3.11"
    assert pkgs(r) == {"python": "=3.11", "numpy": "=1.26.4=py311h64a7726_0",
                       "scikit-learn": ">=1.5", "pandas": "", "pip": "",
                       "mlflow": "==3.17.2", "rich": "==13.7.1"}
    assert by_name(r, "numpy")["manager"] == "conda"
    assert by_name(r, "scikit-learn")["channel"] == "conda-forge"
    assert by_name(r, "mlflow")["manager"] == "pip"
    assert by_name(r, "rich")["from"] == "envs/requirements-extra.txt"
    assert r["includes"] == ["envs/requirements-extra.txt"]
    assert r["options"] == ["--extra-index-url https://pypi.example/simple"]
    assert r["warnings"] == []
    assert r["pinned"] is False


def test_conda_export_is_pinned(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "conda.yaml", """
        dependencies:
        - python=3.11.7=h955ad1f_0
        - numpy=1.26.4=py311h64a7726_0
        - pip:
          - mlflow==3.17.2
        """)
    r = parse_env_file(tmp_path, "conda.yaml")
    assert r["python"] == "3.11.7"
    assert r["pinned"] is True
    assert r["warnings"] == ["a pip: list without pip among the conda dependencies"]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\ndependencies: [python=3.11\n", "invalid YAML"),
    ("- just\n- a list\n", "expected a mapping at the top, found a list"),
    ("", "empty file"),
    ("name: x\n", "no dependencies listed"),
    ("dependencies: numpy\n", "dependencies should be a list"),
    ("dependencies:\n  - numpy\n  - {conda: x}\n  - [a]\n", "unsupported entry"),
    ("dependencies:\n  - pip:\n      - 'bad spec here'\n", "pip entry 1: bad: unrecognised"),
    ("name: x\n  bad: indent\n", "invalid YAML"),
    ("key: [unclosed, list\nother: 1\n", "invalid YAML"),
    ("\tdependencies: []\n", "invalid YAML"),
])
def test_conda_malformed(tmp_path: Path, yaml_reader: str, text: str, expected: str) -> None:
    write(tmp_path, "conda.yaml", text)
    r = parse_env_file(tmp_path, "conda.yaml")
    assert r["kind"] == "conda"
    assert any(expected in w for w in r["warnings"]), r["warnings"]


MLPROJECT = """
    name: wine-quality

    python_env: envs/python_env.yaml

    entry_points:
      main:
        parameters:
          alpha: {type: float, default: 0.5}
          l1_ratio: {type: float, default: 0.1}
          data: path
          unused: {type: string, default: "x"}
        command: "python train.py --alpha {alpha} --l1-ratio {l1_ratio} --data {data}"
      validate:
        command: |
          python validate.py
            --strict
    """


def test_mlproject(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "MLproject", MLPROJECT)
    r = parse_env_file(tmp_path, "MLproject")
    assert r["kind"] == "mlproject"
    assert r["name"] == "wine-quality"
    assert r["python"] is None and r["packages"] == []
    assert r["env"] == {"kind": "python_env", "path": "envs/python_env.yaml"}
    main = r["entry_points"]["main"]
    assert main["parameters"] == {
        "alpha": {"type": "float", "default": 0.5},
        "l1_ratio": {"type": "float", "default": 0.1},
        "data": {"type": "path", "default": None},
        "unused": {"type": "string", "default": "x"},
    }
    assert main["command"] == "python train.py --alpha {alpha} --l1-ratio {l1_ratio} --data {data}"
    assert r["entry_points"]["validate"] == {
        "parameters": {}, "command": "python validate.py\n  --strict\n"}
    assert r["warnings"] == [
        "python_env file envs/python_env.yaml not found",
        "entry point main: parameter unused is not used in the command",
    ]


def test_mlproject_env_defaults(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "proj/MLproject", "name: p\nentry_points:\n  main:\n    command: python x.py\n")
    r = parse_env_file(tmp_path, "proj/MLproject")
    assert r["env"] is None and r["warnings"] == []
    write(tmp_path, "proj/conda.yaml", "dependencies: [python=3.11]\n")
    assert parse_env_file(tmp_path, "proj/MLproject")["env"] == {
        "kind": "conda_env", "path": "proj/conda.yaml", "implicit": True}
    write(tmp_path, "proj/python_env.yaml", "python: '3.11'\n")
    assert parse_env_file(tmp_path, "proj/MLproject")["env"] == {
        "kind": "python_env", "path": "proj/python_env.yaml", "implicit": True}
    write(tmp_path, "proj/MLproject", "name: p\ndocker_env:\n  image: repo/img:1\n"
                                       "conda_env: conda.yaml\nentry_points: {}\n")
    r = parse_env_file(tmp_path, "proj/MLproject")
    assert r["env"]["kind"] == "conda_env"
    assert r["warnings"] == ["several environments declared: conda_env, docker_env"]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nentry_points: [main]\n", "entry_points should be a mapping"),
    ("name: x\n", "no entry_points"),
    ("entry_points:\n  main: python x.py\n", "entry point main: should be a mapping"),
    ("entry_points:\n  main:\n    parameters: {a: 3}\n    command: run {a}\n",
     "parameter a should be a type or a mapping"),
    ("entry_points:\n  main:\n    parameters: [a]\n", "entry point main: no command"),
    ("python_env: [a]\nentry_points: {}\n", "python_env should name a file"),
    ("name: 'unterminated\n", "invalid YAML"),
])
def test_mlproject_malformed(tmp_path: Path, yaml_reader: str, text: str, expected: str) -> None:
    write(tmp_path, "MLproject", text)
    r = parse_env_file(tmp_path, "MLproject")
    assert any(expected in w for w in r["warnings"]), r["warnings"]


def test_python_env(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "python_env.yaml", """
        python: "3.11.7"
        build_dependencies:
          - pip==24.0
          - setuptools
        dependencies:
          - -r requirements.txt
          - mlflow==3.17.2
        """)
    write(tmp_path, "requirements.txt", "numpy==2.4.6\n")
    r = parse_env_file(tmp_path, "python_env.yaml")
    assert r["kind"] == "python_env"
    assert r["python"] == "3.11.7"
    assert pkgs(r) == {"numpy": "==2.4.6", "mlflow": "==3.17.2"}
    assert [p["name"] for p in r["build_dependencies"]] == ["pip", "setuptools"]
    assert r["includes"] == ["requirements.txt"]
    assert r["pinned"] is True
    assert r["warnings"] == []


def test_python_env_unquoted_version(tmp_path: Path, yaml_reader: str) -> None:
    write(tmp_path, "python_env.yaml", "python: 3.10\ndependencies:\n  - numpy\n")
    r = parse_env_file(tmp_path, "python_env.yaml")
    assert r["python"] == "3.10"  # not 3.1, as YAML reads it
    assert "is a YAML number" in r["warnings"][0]


@pytest.mark.parametrize(("text", "expected"), [
    ("dependencies: [numpy]\n", "no python version"),
    ("python: [3]\n", "python should be a version string"),
    ("python: '3.11'\ndependencies: numpy\n", "dependencies should be a list"),
    ("python: '3.11'\ndependencies:\n  - -r missing.txt\n", "included file missing.txt not found"),
    ("python: '3.11'\nbuild_dependencies:\n  - 'pip !!'\n", "build_dependencies: entry 1"),
    ("python: '3.11'\n  oops: 1\n", "invalid YAML"),
])
def test_python_env_malformed(tmp_path: Path, yaml_reader: str, text: str, expected: str) -> None:
    write(tmp_path, "python_env.yaml", text)
    r = parse_env_file(tmp_path, "python_env.yaml")
    assert any(expected in w for w in r["warnings"]), r["warnings"]


# -- the built-in YAML reader ------------------------------------------------------


# -- whole-file robustness -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted({
    "requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock", "Pipfile", "Pipfile.lock",
    "conda.yaml", "environment.yml", "MLproject", "python_env.yaml", "setup.cfg",
    ".python-version"}))
@pytest.mark.parametrize("content", [
    b"\x00\xff\xfe binary \x89PNG",
    b"\xef\xbb\xbf",  # a BOM and nothing else
    b"{{{{ [[[[ ::::",
    b"key = [\n" * 50,
    b"a:\n" + b"  " * 400 + b"b: 1\n",
])
def test_garbage_never_raises(tmp_path: Path, name: str, content: bytes) -> None:
    write(tmp_path, name, content)
    r = parse_env_file(tmp_path, name)
    assert set(r) >= {"path", "kind", "python", "packages", "warnings", "pinned"}
    assert r["path"] == name
    json.dumps(r)  # the daemon sends it as JSON


def test_unreadable_and_missing(tmp_path: Path) -> None:
    r = parse_env_file(tmp_path, "requirements.txt")
    assert r["packages"] == [] and r["warnings"][0].startswith("cannot read")
    (tmp_path / "pyproject.toml").mkdir()
    assert parse_env_file(tmp_path, "pyproject.toml")["warnings"] == [
        "pyproject.toml is not a regular file (a folder); octostore skipped it"]
    write(tmp_path, "sub/requirements.txt", "x==1\n")
    assert parse_env_file(tmp_path, "./sub//requirements.txt")["path"] == "sub/requirements.txt"
    r = parse_env_file(tmp_path, "train.py")
    assert r["kind"] == "unknown" and r["warnings"] == ["not an environment file"]


def test_non_utf8_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", b"numpy==2.0 # caf\xe9\nrich==13\n")
    r = parse_env_file(tmp_path, "requirements.txt")
    assert pkgs(r) == {"numpy": "==2.0", "rich": "==13"}
    assert "not valid UTF-8" in r["warnings"][0]


def test_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from octostored.envfiles import _common

    monkeypatch.setattr(_common, "MAX_BYTES", 10)
    write(tmp_path, "requirements.txt", "numpy==2.0\nrich==13\n")
    r = parse_env_file(tmp_path, "requirements.txt")
    assert r["packages"] == [] and r["warnings"] == [
        "requirements.txt is 20 bytes, over the 10 bytes cap for an environment file;"
        " octostore skipped it"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{}'\"#=<>;,@ \n\t.|>~1")), max_size=120),
       name=st.sampled_from(["requirements.txt", "conda.yaml", "MLproject", "python_env.yaml",
                             "pyproject.toml", "setup.cfg", "uv.lock"]))
def test_fuzz_never_raises(tmp_path: Path, text: str, name: str) -> None:
    write(tmp_path, name, text.encode())
    r = parse_env_file(tmp_path, name)
    assert isinstance(r["warnings"], list)
    # An internal error would be a parser bug, not a property of the input.
    assert not any(w.startswith("could not be parsed") for w in r["warnings"]), r["warnings"]


# -- summary, the demo, and the import contract ------------------------------------------


def test_environment_summary(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "numpy==2.0\n")
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\nrequires-python = ">=3.11"\n')
    write(tmp_path, "svc/conda.yaml", "dependencies:\n  - python=3.10\n  - [bad]\n")
    s = environment_summary(tmp_path)
    assert [f["path"] for f in s["files"]] == ["pyproject.toml", "requirements.txt",
                                               "svc/conda.yaml"]
    assert s["python"] == [{"path": "pyproject.toml", "python": ">=3.11"},
                           {"path": "svc/conda.yaml", "python": "3.10"}]
    assert s["pinned"] == ["requirements.txt"]
    assert s["warning_count"] == 1
    json.dumps(s)
    assert "root" not in s and "clock" not in s  # the daemon adds those around it


def test_demo_folder() -> None:
    s = environment_summary(DEMO)
    by_path = {f["path"]: f for f in s["files"]}
    assert set(by_path) == {"MLproject", "python_env.yaml", "requirements.txt"}
    assert s["warning_count"] == 0, [f["warnings"] for f in s["files"]]

    requirements = by_path["requirements.txt"]
    assert requirements["pinned"] is True
    assert pkgs(requirements)["mlflow"] == "==3.18.0"
    assert {"scikit-learn", "pandas"} <= set(pkgs(requirements))

    python_env = by_path["python_env.yaml"]
    assert python_env["python"].startswith("3.11")
    assert python_env["includes"] == ["requirements.txt"]
    assert pkgs(python_env) == pkgs(requirements)

    project = by_path["MLproject"]
    assert project["name"] == "wine-quality"
    assert project["env"] == {"kind": "python_env", "path": "python_env.yaml"}
    main = project["entry_points"]["main"]
    # The MLproject's defaults are train.py's argparse defaults.
    spec = importlib.util.spec_from_file_location("demo_train", DEMO / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)  # cheap: heavy imports happen inside main()
    defaults = vars(train.parse_args([]))
    assert {name: p["default"] for name, p in main["parameters"].items()} == defaults
    for name in defaults:
        assert f"--{name.replace('_', '-')} {{{name}}}" in main["command"]


def test_envfiles_import_no_heavy_modules() -> None:
    code = (
        "import sys, octostored.envfiles as e\n"
        f"e.environment_summary({str(DEMO)!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mlflow', 'pandas', 'numpy', 'sklearn'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    assert set(envfiles.__all__) >= {"ENV_FILE_NAMES", "is_env_file", "find_env_files",
                                     "parse_env_file", "environment_summary"}


_yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2),
                          st.dates(), st.sampled_from(["python=3.11", "-r x.txt", "pip", "a b"]))
_yaml_keys = st.one_of(st.sampled_from(["name", "dependencies", "pip", "python", "channels",
                                        "entry_points", "parameters", "command", "default",
                                        "type", "python_env", "conda_env", "docker_env",
                                        "image", "build_dependencies", "main"]),
                       st.integers(0, 3), st.booleans())
_yaml_trees = st.recursive(
    _yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_yaml_keys, inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_yaml_trees, name=st.sampled_from(["conda.yaml", "MLproject", "python_env.yaml"]))
def test_fuzz_yaml_shapes(tmp_path: Path, tree: Any, name: str) -> None:
    """Valid YAML of any shape: warnings at most, and a record JSON can carry."""
    yaml = pytest.importorskip("yaml")
    write(tmp_path, name, yaml.safe_dump(tree))
    r = parse_env_file(tmp_path, name)
    assert not any(w.startswith("could not be parsed") for w in r["warnings"]), r["warnings"]
    json.dumps(r)


def test_toml_values_of_other_types(tmp_path: Path) -> None:
    write(tmp_path, "uv.lock", "version = 1979-05-27\n[[package]]\nname = 'x'\n"
                               "source = { git = 2020-01-01 }\n")
    json.dumps(parse_env_file(tmp_path, "uv.lock"))
    write(tmp_path, "poetry.lock", "[metadata]\nlock-version = 12:00:00\n")
    json.dumps(parse_env_file(tmp_path, "poetry.lock"))
    write(tmp_path, "Pipfile", "[[source]]\nurl = 3\n[requires]\npython_version = 3.11\n"
                               "[packages]\nx = {version = 1}\n")
    r = parse_env_file(tmp_path, "Pipfile")
    json.dumps(r)
    assert r["python"] == "3.11" and r["sources"] == [] and pkgs(r) == {"x": ""}

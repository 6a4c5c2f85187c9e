"""The pure parts of reproduce: --set rewriting, MLproject commands, comparison, version
matching, environment specs from each kind of file, path mapping, config, exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from octostored.cli.reproduce import exit_code
from octostored.reproduce import compare, envspec, overrides, plan, projectenv
from octostored.reproduce.interpreters import satisfies


# -- --set ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "sets", "want"), [
    (["python", "train.py", "--lr", "0.1", "--seed", "1"], {"lr": "0.3"},
     ["python", "train.py", "--lr", "0.3", "--seed", "1"]),
    (["python", "train.py", "--n-estimators=100"], {"n_estimators": "300"},
     ["python", "train.py", "--n-estimators=300"]),
    (["python", "-u", "train.py", "model.lr=0.1", "+trainer.epochs=3"],
     {"model.lr": "0.5", "trainer.epochs": "9"},
     ["python", "-u", "train.py", "model.lr=0.5", "+trainer.epochs=9"]),
    (["python", "-m", "pkg.train", "--alpha", "-0.5"], {"alpha": "2"},
     ["python", "-m", "pkg.train", "--alpha", "2"]),
    (["python", "train.py", "--verbose", "--lr", "1"], {"verbose": "false"},
     ["python", "train.py", "--lr", "1"]),
    (["python", "train.py", "--lr", "1", "--", "extra"], {"seed": "4"},
     ["python", "train.py", "--lr", "1", "--seed", "4", "--", "extra"]),
    (["python", "train.py", "--n_estimators", "5"], {"max_depth": "4"},
     ["python", "train.py", "--n_estimators", "5", "--max_depth", "4"]),
    (["python", "train.py", "lr=1"], {"seed": "4"}, ["python", "train.py", "lr=1", "seed=4"]),
])
def test_rewrite_argv(argv: list[str], sets: dict[str, str], want: list[str]) -> None:
    params = {"seed": "0", "max_depth": "3", "lr": "1", "model.lr": "0.1"}
    got, changes = overrides.rewrite_argv(argv, sets, params)
    assert got == want
    assert len(changes) == len(sets)


def test_rewrite_argv_refuses_a_key_the_script_does_not_know() -> None:
    with pytest.raises(overrides.CannotOverride, match="neither on the run's command line"):
        overrides.rewrite_argv(["python", "train.py", "--lr", "1"], {"momentum": "0.9"},
                               {"lr": "1"})


def test_rewrite_does_not_touch_the_interpreter_options_or_script() -> None:
    argv = ["python", "-W", "ignore", "lr=1.py", "--lr", "1"]
    got, _ = overrides.rewrite_argv(argv, {"lr": "2"}, {})
    assert got == ["python", "-W", "ignore", "lr=1.py", "--lr", "2"]


def test_parse_sets() -> None:
    assert overrides.parse_sets(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    assert overrides.parse_sets({"a": 1, "b": True}) == {"a": "1", "b": "true"}
    with pytest.raises(overrides.CannotOverride):
        overrides.parse_sets(["novalue"])


def test_render_mlproject_like_mlflow_run() -> None:
    declared = {"alpha": {"type": "float", "default": 0.5}, "name": {"type": "str",
                                                                      "default": None}}
    cmd, missing = overrides.render_mlproject("python train.py {alpha} {name}", declared,
                                              {"name": "a b", "extra": "1"})
    assert cmd == "python train.py 0.5 'a b' --extra 1"
    assert missing == []
    _, missing = overrides.render_mlproject("python t.py {name}", declared, {})
    assert missing == ["name"]


# -- compare -------------------------------------------------------------------------------------
def test_compare_exact_tolerance_and_verdicts() -> None:
    rows = compare.compare_metrics({"a": 1.0, "b": 2.0, "n": math.nan, "gone": 1.0},
                                   {"a": 1.0, "b": 2.000001, "n": math.nan, "new": 3.0}, 0.0)
    by = {r["key"]: r for r in rows}
    assert by["a"]["status"] == "equal" and by["n"]["status"] == "equal"
    assert by["b"]["status"] == "diverged" and by["b"]["rel_diff"] == pytest.approx(5e-7)
    assert by["gone"]["status"] == "missing" and by["new"]["status"] == "new"
    assert by["n"]["original"] == "NaN"  # no bare NaN on the wire
    assert compare.verdict(rows) == "diverged"
    rows = compare.compare_metrics({"b": 2.0}, {"b": 2.000001}, 1e-6)
    assert compare.verdict(rows) == "reproduced"
    rows = compare.compare_metrics({"b": 2.0, "t": 5.0}, {"b": 2.0, "t": 9.0}, 0, {"t"})
    assert compare.verdict(rows) == "reproduced"
    assert compare.agree(math.inf, math.inf, 0) and not compare.agree(math.inf, -math.inf, 1)


def test_compare_params_marks_the_expected_change() -> None:
    diff = compare.compare_params({"lr": "0.1", "seed": "1"}, {"lr": "0.3", "seed": "1"},
                                  {"lr": "0.3"})
    assert diff == [{"key": "lr", "original": "0.1", "reproduced": "0.3", "expected": True}]
    assert "acc 1.0 -> 2.0" in compare.summary(compare.compare_metrics({"acc": 1.0},
                                                                       {"acc": 2.0}, 0))


# -- versions ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "want", "ok"), [
    ("3.11.7", "3.11.7", True), ("3.11.9", "3.11.7", False), ("3.11.9", "3.11", True),
    ("3.12.1", ">=3.10,<3.13", True), ("3.13.0", ">=3.10,<3.13", False),
    ("3.11.2", "^3.11", True), ("4.0.0", "^3.11", False), ("3.11.4", "3.11.*", True),
    ("3.10.1", "~=3.11", False), ("3.12.0", "~=3.11", True), ("3.11.0", "", True),
])
def test_satisfies(version: str, want: str, ok: bool) -> None:
    assert satisfies(version, want) is ok


# -- environment specs -----------------------------------------------------------------------------
def test_from_lock_pins_everything_and_keeps_the_project_on_pythonpath() -> None:
    lock = {"python": {"version": "3.11.7", "implementation": "cpython"},
            "packages": [{"name": "numpy", "version": "2.0.0"},
                         {"name": "octostore", "version": "0.1.0", "editable": True,
                          "path": "/home/me/octostore"},
                         {"name": "mypkg", "version": "0.1", "editable": True, "path": "src/.."},
                         {"name": "tool", "version": "1", "editable": True, "path": "/opt/x"}]}
    spec = envspec.from_lock(lock, "ab" * 32, ".octostore/envs/x.json")
    assert spec.requirements == ["numpy==2.0.0"] and spec.no_deps
    assert spec.python == "3.11.7" and spec.pythonpath == ["src/.."]
    skipped = {s["name"]: s["blocking"] for s in spec.skipped}
    assert skipped == {"octostore": False, "tool": True}


def test_same_closure_same_key_whatever_the_source() -> None:
    a = envspec.EnvSpec("captured", "lock", requirements=["NumPy==2.0", "a_b==1"], no_deps=True)
    b = envspec.EnvSpec("project", "req", requirements=["a-b==1", "numpy==2.0"], no_deps=True)
    assert a.key_material() == b.key_material()


def test_from_project_requirements_with_includes_and_the_local_project(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "requirements.txt").write_text("-r base.txt\n-e .\nrequests>=2 # http\n")
    (tmp_path / "base.txt").write_text("numpy==2.0.0\n-c constraints.txt\n")
    (tmp_path / "constraints.txt").write_text("numpy<3\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname="p"\ndependencies=["click"]\n')
    (tmp_path / ".python-version").write_text("3.11\n")
    spec = projectenv.from_project(str(tmp_path), "sub", "c0ffee" * 6)
    assert spec.source.startswith("requirements.txt at c0ffee")
    assert spec.requirements[0] == "numpy==2.0.0"
    assert f"-c {tmp_path / 'constraints.txt'}" in spec.requirements
    assert "click" in spec.requirements and "requests>=2" in spec.requirements
    assert spec.pythonpath == ["."] and spec.python == "3.11"
    assert set(spec.material["files"]) >= {"requirements.txt", "base.txt", "constraints.txt"}


def test_from_project_conda_pip_section(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text(
        "name: x\ndependencies:\n  - python=3.10\n  - numpy=1.26\n  - libgcc\n  - pip\n"
        "  - pip:\n    - requests==2.31.0\n")
    spec = projectenv.from_project(str(tmp_path), ".", "a" * 40)
    assert spec.python == "3.10"
    assert "requests==2.31.0" in spec.requirements and "numpy==1.26.*" in spec.requirements
    assert [s["name"] for s in spec.skipped] == ["libgcc"]
    assert "conda is not available" in spec.source


def test_from_project_mlproject_python_env(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: p\npython_env: env.yaml\nentry_points:\n"
                                        "  main:\n    command: python t.py\n")
    (tmp_path / "env.yaml").write_text("python: '3.11'\ndependencies:\n  - -r reqs.txt\n"
                                       "  - pandas\n")
    (tmp_path / "reqs.txt").write_text("numpy==2.0.0\n")
    spec = projectenv.from_project(str(tmp_path), ".", "a" * 40)
    assert spec.python == "3.11" and "MLproject python_env" in spec.source
    assert spec.requirements == ["pandas", "numpy==2.0.0"]


def test_from_project_uv_lock_without_uv_and_pipfile_lock(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname="p"\nrequires-python=">=3.10"\n')
    (tmp_path / "uv.lock").write_text(
        'version = 1\nrequires-python = ">=3.10"\n\n[[package]]\nname = "p"\nversion = "0.1"\n'
        'source = { editable = "." }\n\n[[package]]\nname = "six"\nversion = "1.16.0"\n'
        'source = { registry = "https://pypi.org/simple" }\n')
    spec = projectenv.from_project(str(tmp_path), ".", "a" * 40)
    assert spec.requirements == ["six==1.16.0"] and spec.no_deps and spec.pythonpath == ["."]
    spec = projectenv.from_project(str(tmp_path), ".", "a" * 40, ["six==1.16.0", "-e ."])
    assert spec.requirements == ["six==1.16.0"]
    other = tmp_path / "pip"
    other.mkdir()
    (other / "Pipfile.lock").write_text(json.dumps({"_meta": {}, "default": {
        "six": {"version": "==1.16.0"}}, "develop": {"pytest": {"version": "==8.0"}}}))
    spec = projectenv.from_project(str(other), ".", "a" * 40)
    assert spec.requirements == ["six==1.16.0"]


def test_from_project_without_any_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(envspec.EnvUnavailable, match="declares no environment"):
        projectenv.from_project(str(tmp_path), ".", "a" * 40)


def test_model_dirs_in_artifacts_and_beside_the_runs(tmp_path: Path) -> None:
    art = tmp_path / "exp" / "run1" / "artifacts"
    (art / "model").mkdir(parents=True)
    (art / "model" / "MLmodel").write_text("run_id: run1\n")
    (art / "model" / "requirements.txt").write_text("scikit-learn==1.5.0\n")
    (art / "model" / "python_env.yaml").write_text("python: 3.11.7\ndependencies: []\n")
    logged = tmp_path / "exp" / "models" / "m-1" / "artifacts"
    logged.mkdir(parents=True)
    (logged / "MLmodel").write_text("run_id: run1\n")
    (tmp_path / "exp" / "models" / "m-2" / "artifacts").mkdir(parents=True)
    (tmp_path / "exp" / "models" / "m-2" / "artifacts" / "MLmodel").write_text("run_id: x\n")
    found = envspec.find_model_dirs(str(art), "run1")
    assert found == [str(art / "model"), str(logged)]
    spec = projectenv.from_model(found[0], str(tmp_path))
    assert spec.requirements == ["scikit-learn==1.5.0"] and spec.python == "3.11.7"


def test_diff_locks() -> None:
    a = {"python": {"version": "3.11.7"}, "platform": {"tag": "linux"},
         "packages": [{"name": "x", "version": "1"}, {"name": "y", "version": "1"},
                      {"name": "me", "version": "0", "editable": True}]}
    b = {"python": {"version": "3.11.9"}, "platform": {"tag": "linux"},
         "packages": [{"name": "x", "version": "2"}, {"name": "z", "version": "1"}]}
    got = {(d["what"], d["name"]) for d in envspec.diff_locks(a, b)}
    assert got == {("python", "python"), ("package", "x"), ("missing", "y"), ("extra", "z")}


# -- paths, config, exit codes ---------------------------------------------------------------
def test_map_path_finds_a_script_from_another_machine() -> None:
    files = {"src/train.py", "train.py", "nb/a.ipynb"}
    assert plan.map_path("/home/alice/proj/src/train.py", files) == "src/train.py"
    assert plan.map_path("train.py", files, "src") == "src/train.py"
    assert plan.map_path("C:\\Users\\bob\\proj\\nb\\a.ipynb", files) == "nb/a.ipynb"
    assert plan.map_path("/x/missing.py", files) is None


def test_config_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.octostore.reproduce]\ntolerance = 1e-6\nignore_metrics = ['fit_seconds']\n")
    assert plan.config(str(tmp_path)) == {"tolerance": 1e-6, "ignore_metrics": ["fit_seconds"]}
    (tmp_path / "octostore.toml").write_text("[reproduce]\ntolerance = 0.01\n")
    assert plan.config(str(tmp_path)) == {"tolerance": 0.01}


@pytest.mark.parametrize(("state", "verdict", "sets", "code"), [
    ("done", "reproduced", False, 0), ("done", "diverged", False, 3),
    ("done", "diverged", True, 0), ("failed", "failed", False, 4),
    ("cancelled", "cancelled", False, 130),
])
def test_exit_codes(state: str, verdict: str, sets: bool, code: int) -> None:
    assert exit_code(state, {"verdict": verdict}, sets) == code


def test_failing_pins_are_read_from_the_installers_error() -> None:
    from octostored.reproduce.envbuild import failing_pins

    err = ["error: No solution found when resolving dependencies",
           "  cause: Because there is no version of Foo_Bar==9.9 and you require foo-bar==9.9,"
           " we can conclude that your requirements are unsatisfiable."]
    assert failing_pins(err, ["six==1.16.0", "Foo_Bar==9.9", "foo==9.9"]) == ["Foo_Bar==9.9"]
    assert failing_pins(["Failed to build `lxml==4.1.0`"], ["lxml==4.1.0", "x==4.1"]) == [
        "lxml==4.1.0"]

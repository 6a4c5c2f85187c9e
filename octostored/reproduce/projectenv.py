"""The ``project`` environment: what the repo's own files declare at the run's commit.

Searched in the run's folder first, then each folder up to the repo's top; the first
that declares anything wins, in this order: ``uv.lock`` with ``pyproject.toml``
(through ``uv export --frozen --no-dev`` when uv is here, so markers apply),
``Pipfile.lock``, ``requirements*.txt`` (``-r``/``-c`` includes followed), a
``Pipfile`` without its lock (``[packages]``, resolved now), the MLproject's
``python_env`` (or ``conda_env``), ``conda.yaml``/``environment.yml``
(their pip section; conda packages are installed from PyPI under the same name where
they have one, conda-only ones are listed), ``python_env.yaml``, ``pyproject.toml``
alone.  The Python version comes from ``.python-version``, the file itself, or the
lock's range.

Files are parsed by :mod:`octostored.envfiles`; this module turns them into pip
requirement lines.  A local project (``-e .``, ``./pkg``) never goes into the
environment: its folder goes on ``PYTHONPATH`` and its dependencies into the
requirements (see :mod:`.envspec`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from .envspec import EnvSpec, EnvUnavailable

PROJECT_ORDER = ("uv.lock", "Pipfile.lock", "requirements.txt", "requirements/*.txt",
                 "Pipfile", "MLproject", "conda.yaml", "environment.yml", "environment.yaml",
                 "pyproject.toml")


def project_dirs(worktree: str, cwd: str) -> list[str]:
    """The run's folder and each folder above it up to the top, deepest first."""
    out = []
    cur = os.path.normpath(os.path.join(worktree, cwd or "."))
    if not (cur == worktree or cur.startswith(worktree + os.sep)):
        cur = worktree
    while True:
        out.append(cur)
        if cur == worktree:
            return out
        cur = os.path.dirname(cur)


def from_project(worktree: str, cwd: str, commit: str,
                 uv_export: list[str] | None = None) -> EnvSpec:
    """The environment the repo's files declare at the commit checked out at ``worktree``.

    ``uv_export`` is the output of ``uv export`` when the caller ran it for a ``uv.lock``
    (see :func:`uv_lock_dir`); without it a ``uv.lock`` is read directly.  When other
    files could have been used too, a note says which one was used and why.

    Raises:
        EnvUnavailable: no environment file declares anything.
    """
    short = commit[:10]
    for folder in project_dirs(worktree, cwd):
        found = _from_folder(worktree, folder, short, uv_export)
        if found is not None:
            spec, kind = found
            spec.why = _why(worktree, folder, cwd, spec.source.split(" ", 1)[0], kind)
            if spec.why:
                spec.notes.insert(0, spec.why)
            return spec
    raise EnvUnavailable(f"the repo declares no environment at commit {short} (no "
                         "requirements.txt, pyproject.toml, uv.lock, Pipfile, Pipfile.lock, "
                         "conda.yaml or MLproject python_env)",
                         "use --env current to run it with an interpreter you choose")


def _from_folder(worktree: str, folder: str, short: str,
                 uv_export: list[str] | None) -> tuple[EnvSpec, str] | None:
    """The first environment file of ``folder`` that declares anything (PROJECT_ORDER),
    and the kind of choice it was (a key of ``_WHY``)."""
    from ..envfiles import parse_env_file

    rel_folder = os.path.relpath(folder, worktree)
    prefix = "" if rel_folder == "." else rel_folder + "/"
    python = _python_hint(folder, worktree)
    if os.path.isfile(os.path.join(folder, "uv.lock")) and os.path.isfile(
            os.path.join(folder, "pyproject.toml")):
        spec = _from_uv_lock(folder, worktree, uv_export, python)
        spec.source = f"{prefix}uv.lock at {short}"
        return spec, "lock"
    if os.path.isfile(os.path.join(folder, "Pipfile.lock")):
        rec = parse_env_file(worktree, prefix + "Pipfile.lock")
        reqs = [f"{p['name']}{p['spec']}" for p in rec["packages"]
                if not p.get("editable") and not p.get("url")]
        return EnvSpec("project", f"{prefix}Pipfile.lock at {short}",
                       python=python or rec.get("python"), requirements=reqs, no_deps=True,
                       material=_file_material(worktree, [prefix + "Pipfile.lock"]),
                       workdir=folder), "lock"
    reqs_file = _requirements_file(folder)
    if reqs_file is not None:
        lines, pythonpath, material = flatten_requirements(reqs_file, worktree)
        return EnvSpec("project", f"{os.path.relpath(reqs_file, worktree)} at {short}",
                       python=python, requirements=lines, pythonpath=pythonpath,
                       material={"files": material, "python": python},
                       workdir=folder), "requirements"
    if os.path.isfile(os.path.join(folder, "Pipfile")):
        spec = _from_pipfile(worktree, prefix + "Pipfile", python, short)
        if spec is not None:
            return spec, "pipfile"
    mlproject = os.path.join(folder, "MLproject")
    if os.path.isfile(mlproject):
        rec = parse_env_file(worktree, prefix + "MLproject")
        env = rec.get("env") or {}
        if env.get("kind") == "python_env" and env.get("path") and os.path.isfile(
                os.path.join(worktree, env["path"])):
            return _from_python_env(worktree, env["path"], python, short), "mlproject"
        if env.get("kind") == "conda_env" and env.get("path") and os.path.isfile(
                os.path.join(worktree, env["path"])):
            return _from_conda(worktree, env["path"], python, short), "mlproject"
    for name in ("conda.yaml", "environment.yml", "environment.yaml"):
        if os.path.isfile(os.path.join(folder, name)):
            return _from_conda(worktree, prefix + name, python, short), "conda"
    if os.path.isfile(os.path.join(folder, "python_env.yaml")):
        return _from_python_env(worktree, prefix + "python_env.yaml", python,
                                short), "python_env"
    if os.path.isfile(os.path.join(folder, "pyproject.toml")):
        rec = parse_env_file(worktree, prefix + "pyproject.toml")
        reqs = [_req_line(p) for p in rec["packages"] if not p.get("optional")
                and not p.get("group")]
        if reqs or rec.get("python"):
            return EnvSpec("project", f"{prefix}pyproject.toml at {short}",
                           python=python or rec.get("python"), requirements=reqs,
                           pythonpath=[rel_folder if rel_folder != "." else "."],
                           material=_file_material(worktree, [prefix + "pyproject.toml"]),
                           workdir=folder), "pyproject"
    return None


def _from_pipfile(worktree: str, rel: str, python: str | None, short: str) -> EnvSpec | None:
    """A Pipfile without its lock: its ``[packages]`` resolved as pipenv would (no dev)."""
    from ..envfiles import parse_env_file
    from ..envfiles.pipfile import requirement_lines

    rec = parse_env_file(worktree, rel)
    if not rec["packages"] and not rec.get("python"):
        return None
    pip_lines, notes = requirement_lines(rec)
    folder = os.path.dirname(os.path.join(worktree, rel))
    lines, pythonpath, material = _flatten_lines(pip_lines, folder, worktree)
    notes = [*notes, *(f"{rel}: {w}" for w in rec["warnings"])]
    return EnvSpec("project", f"{rel} (no Pipfile.lock: resolved now) at {short}",
                   python=python or rec.get("python"), requirements=lines,
                   pythonpath=pythonpath, notes=notes,
                   material={"files": _file_material(worktree, [rel]), "deps": material},
                   workdir=folder)


# Why a file was chosen over the others present: by the kind of file used.
_KIND_OF = {"uv.lock": "lock", "Pipfile.lock": "lock", "Pipfile": "pipfile",
            "MLproject": "mlproject", "conda.yaml": "conda", "environment.yml": "conda",
            "environment.yaml": "conda", "python_env.yaml": "python_env",
            "pyproject.toml": "pyproject"}
_WHY = {
    "lock": "a lock file comes first, since it names the exact versions",
    "requirements": "a requirements file comes before a Pipfile, an MLproject, conda files "
                    "and pyproject.toml, since pip installs it exactly as written",
    "pipfile": "without a Pipfile.lock or a requirements file, the Pipfile comes before an "
               "MLproject, conda files and pyproject.toml",
    "mlproject": "the environment the MLproject names comes before the other conda and "
                 "python_env files and pyproject.toml",
    "conda": "a conda file comes before python_env.yaml and pyproject.toml",
    "python_env": "python_env.yaml comes before pyproject.toml",
    "pyproject": "pyproject.toml is the last choice",
}
_CONDA_NOTE = ("; conda is not available here, so a conda file could only give its pip section")


def _kind(name: str) -> str | None:
    if name in _KIND_OF:
        return _KIND_OF[name]
    if name.startswith("requirements") and name.endswith(".txt"):
        return "requirements"
    return None


def env_files_in(folder: str) -> list[str]:
    """The environment files of ``folder`` that :func:`from_project` could use."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = [n for n in names if _kind(n) and os.path.isfile(os.path.join(folder, n))]
    sub = os.path.join(folder, "requirements")
    if os.path.isdir(sub):
        found += [f"requirements/{n}" for n in sorted(os.listdir(sub)) if n.endswith(".txt")]
    return found


def predict(repo: str, commit: str, cwd: str) -> str:
    """Before checking out: which environment file :func:`from_project` will most likely use
    at ``commit`` for a run in ``cwd``, and why, from the file names alone (``git ls-tree``);
    ``""`` when there is no choice to explain or git cannot say.  For the plan a user sees
    before anything runs (the job's own sentence, from the files' content, is ``spec.why``)."""
    import subprocess

    parts = [p for p in os.path.normpath(cwd or ".").split(os.sep) if p not in ("", ".")]
    if ".." in parts:
        parts = []
    chain = ["/".join(parts[:n]) for n in range(len(parts), -1, -1)]
    def ls(rel: str) -> list[str] | None:
        try:
            out = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", f"{commit}:{rel}"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.splitlines() if out.returncode == 0 else []

    listing: dict[str, list[str]] = {}
    for rel in chain:
        names = ls(rel)
        if names is None:
            return ""
        found = [n for n in names if _kind(n)]
        if "requirements" in names:
            sub = ls(f"{rel}/requirements" if rel else "requirements") or []
            found += [f"requirements/{n}" for n in sub if n.endswith(".txt")]
        listing[rel] = sorted(found)
    for rel in chain:
        names = listing[rel]
        choice = _first_by_name(names)
        if choice is None:
            continue
        used, kind = choice
        prefix = rel + "/" if rel else ""
        above = [f"{r}/{n}" if r else n for r in chain[chain.index(rel) + 1:] for n in listing[r]]
        return _sentence(prefix + used, kind, [prefix + n for n in _others(names, used, kind)],
                         above)
    return ""


def _first_by_name(names: list[str]) -> tuple[str, str] | None:
    if "uv.lock" in names and "pyproject.toml" in names:
        return "uv.lock", "lock"
    if "Pipfile.lock" in names:
        return "Pipfile.lock", "lock"
    reqs = [n for n in names if _kind(n.rsplit("/", 1)[-1]) == "requirements"]
    if "requirements.txt" in reqs:
        return "requirements.txt", "requirements"
    plain = [n for n in reqs if "/" not in n and not re.search(r"(dev|test|lint|doc)", n)]
    if plain:
        return plain[0], "requirements"
    for n in ("requirements/base.txt", "requirements/main.txt", "requirements/prod.txt",
              "requirements/requirements.txt"):
        if n in reqs:
            return n, "requirements"
    for n, kind in (("Pipfile", "pipfile"), ("MLproject", "mlproject"), ("conda.yaml", "conda"),
                    ("environment.yml", "conda"), ("environment.yaml", "conda"),
                    ("python_env.yaml", "python_env"), ("pyproject.toml", "pyproject")):
        if n in names:
            return n, kind
    return None


def _others(names: list[str], used: str, kind: str) -> list[str]:
    """The files of the same folder that could have been used instead of ``used``."""
    return [n for n in names if n != used
            and not (used == "uv.lock" and n == "pyproject.toml")
            and not (kind == "mlproject" and n in ("MLproject", "python_env.yaml"))
            and not (kind == "requirements" and _kind(n.rsplit("/", 1)[-1]) == "requirements")]


def _sentence(used: str, kind: str, same: list[str], above: list[str]) -> str:
    if not same and not above:
        return ""
    parts = []
    if same:
        why = _WHY[kind]
        if any(_kind(n.rsplit("/", 1)[-1]) == "conda" for n in same):
            why += _CONDA_NOTE
        parts.append(f"not {', '.join(same)}: {why}")
    if above:
        parts.append(f"not {', '.join(above)}: the run's own folder comes before the folders "
                     "above it")
    return f"environment from {used}, {'; '.join(parts)}"


def _why(worktree: str, folder: str, cwd: str, used: str, kind: str) -> str:
    """One sentence saying which file was used (``used``, repo-relative; ``kind``, a key of
    ``_WHY``) and why the others that could have been were not, or ``""`` when none could."""
    prefix = os.path.relpath(folder, worktree)
    prefix = "" if prefix == "." else prefix + "/"
    local = used[len(prefix):] if used.startswith(prefix) else used
    same = [prefix + n for n in _others(env_files_in(folder), local, kind)]
    above = []
    for upper in project_dirs(worktree, cwd):
        if len(upper) < len(folder):
            rel = os.path.relpath(upper, worktree)
            above += [n if rel == "." else f"{rel}/{n}" for n in env_files_in(upper)]
    return _sentence(used, kind, same, above)


def uv_lock_dir(worktree: str, cwd: str) -> str | None:
    """The folder whose ``uv.lock`` :func:`from_project` would use, if any."""
    for folder in project_dirs(worktree, cwd):
        if os.path.isfile(os.path.join(folder, "uv.lock")) and os.path.isfile(
                os.path.join(folder, "pyproject.toml")):
            return folder
        if any(os.path.exists(os.path.join(folder, n)) for n in (
                "Pipfile.lock", "requirements.txt", "Pipfile", "MLproject", "conda.yaml",
                "environment.yml", "pyproject.toml")):
            return None
    return None


def _from_uv_lock(folder: str, worktree: str, exported: list[str] | None,
                  python: str | None) -> EnvSpec:
    from ..envfiles import parse_env_file

    rel = os.path.relpath(folder, worktree)
    prefix = "" if rel == "." else rel + "/"
    material = _file_material(worktree, [prefix + "uv.lock", prefix + "pyproject.toml"])
    if exported is not None:
        reqs = [line for line in exported
                if line.strip() and not line.lstrip().startswith(("#", "-e", "."))]
        notes = ["uv.lock exported with `uv export --frozen --no-dev` (markers applied)"]
    else:
        rec = parse_env_file(worktree, prefix + "uv.lock")
        reqs = [f"{p['name']}{p['spec']}" for p in rec["packages"]
                if not p.get("editable") and not p.get("url") and p.get("spec")]
        notes = ["uv.lock read without uv: every locked package is installed, whatever its "
                 "markers"]
    rec_py = parse_env_file(worktree, prefix + "pyproject.toml")
    return EnvSpec("project", "uv.lock", python=python or rec_py.get("python"),
                   requirements=reqs, no_deps=True, pythonpath=[rel],
                   material=material, notes=notes, workdir=folder)


def _parse_as(worktree: str, rel: str, kind: str) -> dict[str, Any]:
    """Parse ``rel`` as a ``python_env`` or ``conda`` file whatever its name (an MLproject
    may name any file)."""
    from ..envfiles import _common, yaml_files

    result = _common.new_result(rel, kind)
    parser = yaml_files.parse_python_env if kind == "python_env" else yaml_files.parse_conda
    try:
        parser(worktree, rel, result)
    except Exception as exc:  # noqa: BLE001 - the parsers' contract is "never raises"
        result["warnings"].append(f"could not be parsed ({exc})")
    return result


def _from_python_env(worktree: str, rel: str, python: str | None, short: str) -> EnvSpec:
    rec = _parse_as(worktree, rel, "python_env")
    folder = os.path.dirname(os.path.join(worktree, rel))
    lines, pythonpath, material = _flatten_lines(
        [_raw_line(p) for p in rec["packages"] if not p.get("from")]
        + [f"-r {os.path.join(worktree, inc)}" for inc in _includes(rec)]
        + list(rec.get("options") or []), folder, worktree)
    return EnvSpec("project", f"{rel} (MLproject python_env) at {short}",
                   python=rec.get("python") or python, requirements=lines,
                   pythonpath=pythonpath,
                   material={"files": _file_material(worktree, [rel]), "deps": material},
                   workdir=folder)


def _from_conda(worktree: str, rel: str, python: str | None, short: str) -> EnvSpec:
    rec = _parse_as(worktree, rel, "conda")
    folder = os.path.dirname(os.path.join(worktree, rel))
    pip_lines: list[str] = []
    skipped: list[dict[str, Any]] = []
    notes: list[str] = []
    for p in rec["packages"]:
        if p.get("manager") == "pip":
            if not p.get("from"):
                pip_lines.append(_raw_line(p))
            continue
        name = p["name"]
        if name.lower() in ("python", "pip"):
            continue
        spec = p.get("spec") or ""
        ranged = not spec or spec.startswith(("<", ">", "!"))
        version = "" if ranged else spec.lstrip("=").split("=")[0]
        if name.lower().startswith(("lib", "cuda", "mkl", "openssl", "ca-certificates")):
            skipped.append({"name": name, "reason": "a conda-only package (conda is not "
                            "available here)", "blocking": False})
            continue
        pip_lines.append(f"{name}=={version}.*" if version and not version.endswith("*")
                         else (f"{name}=={version}" if version else name))
        notes.append(f"conda package {name}{spec} installed from PyPI")
    lines, pythonpath, material = _flatten_lines(
        pip_lines + [f"-r {os.path.join(worktree, inc)}" for inc in _includes(rec)]
        + list(rec.get("options") or []), folder, worktree)
    return EnvSpec("project", f"{rel} (pip section; conda is not available) at {short}",
                   python=rec.get("python") or python, requirements=lines,
                   pythonpath=pythonpath, skipped=skipped, notes=notes,
                   material={"files": _file_material(worktree, [rel]), "deps": material},
                   workdir=folder)


def _includes(rec: dict[str, Any]) -> list[str]:
    out = []
    for inc in rec.get("includes") or []:
        path = inc.get("path") if isinstance(inc, dict) else inc
        if path:
            out.append(str(path))
    return out


def _raw_line(p: dict[str, Any]) -> str:
    if p.get("url"):
        return str(p["url"]) if not p.get("editable") else f"-e {p['url']}"
    return _req_line(p)


def _req_line(p: dict[str, Any]) -> str:
    extras = f"[{','.join(p['extras'])}]" if p.get("extras") else ""
    marker = f"; {p['marker']}" if p.get("marker") else ""
    return f"{p['name']}{extras}{p.get('spec') or ''}{marker}"


def _requirements_file(folder: str) -> str | None:
    direct = os.path.join(folder, "requirements.txt")
    if os.path.isfile(direct):
        return direct
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    plain = [n for n in names if n.startswith("requirements") and n.endswith(".txt")
             and not re.search(r"(dev|test|lint|doc)", n)]
    if plain:
        return os.path.join(folder, plain[0])
    sub = os.path.join(folder, "requirements")
    for name in ("base.txt", "main.txt", "prod.txt", "requirements.txt"):
        if os.path.isfile(os.path.join(sub, name)):
            return os.path.join(sub, name)
    return None


def _python_hint(folder: str, worktree: str) -> str | None:
    for cur in project_dirs(worktree, os.path.relpath(folder, worktree)):
        path = os.path.join(cur, ".python-version")
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        return line
        except OSError:
            continue
    return None


def _file_material(worktree: str, rels: list[str]) -> dict[str, str]:
    out = {}
    for rel in rels:
        try:
            with open(os.path.join(worktree, rel), "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            out[rel] = ""
    return out


def flatten_requirements(path: str, repo: str) -> tuple[list[str], list[str], dict[str, str]]:
    """A requirements file with its ``-r`` includes inlined and local projects taken out.

    Returns (lines, repo-relative source folders for PYTHONPATH, {file: sha256} of every
    file read).  ``-c`` constraint files become absolute paths; a local project
    (``-e .``, ``./pkg``) is replaced by its ``[project].dependencies``.
    """
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            raw = f.read()
    except OSError as exc:
        raise EnvUnavailable(f"cannot read {path} ({exc.strerror})") from None
    lines, pythonpath, material = _flatten_lines(_logical(raw), os.path.dirname(path), repo,
                                                 seen={os.path.realpath(path)})
    material[_rel(path, repo)] = hashlib.sha256(raw.encode()).hexdigest()
    return lines, pythonpath, material


def _logical(text: str) -> list[str]:
    out, cur = [], ""
    for line in text.splitlines():
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        stripped = re.sub(r"(^|\s)#.*$", "", cur).strip()
        cur = ""
        if stripped:
            out.append(stripped)
    return out


def _rel(path: str, repo: str) -> str:
    return os.path.relpath(path, repo) if path.startswith(repo + os.sep) else path


def _flatten_lines(lines: list[str], base: str, repo: str,
                   seen: set[str] | None = None) -> tuple[list[str], list[str], dict[str, str]]:
    seen = seen if seen is not None else set()
    out: list[str] = []
    pythonpath: list[str] = []
    material: dict[str, str] = {}
    for line in lines:
        opt, _, arg = line.partition(" ")
        arg = arg.strip()
        include = _option_value(line, opt, arg, ("-r", "--requirement"))
        if include is not None:
            full = os.path.normpath(os.path.join(base, include))
            if os.path.realpath(full) in seen:
                continue
            seen.add(os.path.realpath(full))
            try:
                with open(full, encoding="utf-8-sig", errors="replace") as f:
                    raw = f.read()
            except OSError:
                raise EnvUnavailable(f"{_rel(full, repo)} (included by a requirements file) "
                                     "is missing at the run's commit") from None
            material[_rel(full, repo)] = hashlib.sha256(raw.encode()).hexdigest()
            sub, sub_pp, sub_mat = _flatten_lines(_logical(raw), os.path.dirname(full), repo, seen)
            out += sub
            pythonpath += sub_pp
            material.update(sub_mat)
            continue
        constraint = _option_value(line, opt, arg, ("-c", "--constraint"))
        if constraint is not None:
            full = os.path.normpath(os.path.join(base, constraint))
            try:
                with open(full, "rb") as f:
                    material[_rel(full, repo)] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                pass
            out.append(f"-c {full}")
            continue
        target = arg if opt in ("-e", "--editable") else line
        if _is_local_path(target, base):
            local = os.path.normpath(os.path.join(base, target.split("[")[0].removeprefix(
                "file://").removeprefix("file:")))
            if local == repo or local.startswith(repo + os.sep):
                rel = os.path.relpath(local, repo)
                pythonpath.append(rel)
                deps = _project_dependencies(local)
                out += deps
                material[f"{rel}/pyproject.toml"] = hashlib.sha256(
                    "\n".join(deps).encode()).hexdigest()
                continue
        out.append(line)
    return out, pythonpath, material


def _option_value(line: str, opt: str, arg: str, names: tuple[str, str]) -> str | None:
    """The value of a ``-r x`` / ``-rx`` / ``--requirement=x`` style line, else None."""
    short, long = names
    if opt in names:
        return arg or None
    if line.startswith(long + "="):
        return line.split("=", 1)[1].strip() or None
    if line.startswith(short) and not line.startswith("--") and len(line) > len(short):
        return line[len(short):].strip() or None
    return None


def _is_local_path(target: str, base: str) -> bool:
    t = target.strip().split("[")[0]
    if not t or "://" in t or t.startswith("git+"):
        return t.startswith("file:")
    if t.startswith((".", "/")):
        return True
    if re.search(r"[<>=!~;@ ]", t):
        return False
    folder = os.path.join(base, t)
    return os.path.isfile(os.path.join(folder, "pyproject.toml")) or os.path.isfile(
        os.path.join(folder, "setup.py"))


def _project_dependencies(folder: str) -> list[str]:
    import tomllib

    try:
        with open(os.path.join(folder, "pyproject.toml"), "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    deps = (data.get("project") or {}).get("dependencies") or []
    return [str(d) for d in deps if isinstance(d, str)]


def from_model(model_dir: str, repo: str) -> EnvSpec:
    """The environment a logged model's own files describe (``requirements.txt``, else its
    ``python_env.yaml`` or ``conda.yaml``): ``--env model``."""
    from ..envfiles import parse_env_file

    rel = os.path.relpath(model_dir, repo) if model_dir.startswith(repo + os.sep) else model_dir
    req = os.path.join(model_dir, "requirements.txt")
    if not os.path.isfile(req):
        for name, build in (("python_env.yaml", _from_python_env), ("conda.yaml", _from_conda)):
            if os.path.isfile(os.path.join(model_dir, name)):
                spec = build(model_dir, name, None, "")
                what = "pip section of its conda.yaml" if name == "conda.yaml" else name
                spec.kind = "model"
                spec.source = f"the logged model's {what} ({rel})"
                spec.material = {"model": spec.material, "python": spec.python}
                return spec
        raise EnvUnavailable(f"the run's model at {rel} has no requirements.txt, "
                             "python_env.yaml or conda.yaml",
                             "use --env project or --env captured")
    lines, pythonpath, material = flatten_requirements(req, repo)
    python = None
    for name in ("python_env.yaml", "conda.yaml"):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            rec = parse_env_file(model_dir, name)
            python = rec.get("python") or python
            if python:
                break
    return EnvSpec("model", f"the logged model's requirements ({rel})", python=python,
                   requirements=lines, pythonpath=pythonpath,
                   material={"model": material, "python": python}, workdir=model_dir)

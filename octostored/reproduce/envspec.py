"""Which environment a reproduction gets: a list of requirements, a Python version, a cache key.

Four sources, in the order ``--env auto`` tries them:

``captured``
    The run's environment lock (tag ``octostore.env``), found where the
    capture plugin keeps it (``.octostore/envs/<sha256>.json`` in the repo,
    else the user's capture cache): every distribution at its exact version,
    installed with ``--no-deps`` (a lock is a closure: nothing to resolve).
``model``
    The environment the run's model recorded beside its ``MLmodel``: a folder of
    its artifacts (MLflow 2) or its logged model (MLflow 3, ``<exp>/models/m-<id>/``
    in the live store or the committed one, :mod:`..sources.models`), the one named
    ``model`` or the only one; ``requirements.txt``, else ``python_env.yaml``, else
    ``conda.yaml``'s pip section.
``project``
    The repo's environment files *at the run's commit* (:mod:`.projectenv`).
``current``
    An existing interpreter, as it is (nothing is built).

The project's own code is never installed into a cached environment (an
editable install would point into a work tree that is gone after the job):
its source roots go on ``PYTHONPATH`` of the run instead.  The cache key
(:meth:`EnvSpec.key_material`, plus the interpreter's exact version added by
:mod:`.envbuild`) hashes an exact closure by its pins alone (a lock, or
requirements that uv resolved), so two runs whose environments come to the
same packages share one build; unresolved requirements (pip, no uv) are keyed
by their files' bytes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .. import capture_wheel
from ..capture import envlock as capture_envlock
from ..capture import files as capture_files

KEY_FORMAT = 1
"""Bump when the same material should build a different environment."""
NEVER_INSTALL = {"octostore"}
"""Distributions a reproduction never needs (octostore records runs; it does not run them)."""
NOTEBOOK_EXTRAS = ["nbclient", "nbformat", "ipykernel"]


class EnvUnavailable(Exception):
    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


@dataclass
class EnvSpec:
    kind: str
    """captured, model, project or current."""
    source: str
    """What it came from, for people: "lock 1f2e3d4c (.octostore/envs/...)", "requirements.txt"."""
    python: str | None = None
    """The Python wanted: an exact version, ``3.11``, a range, or None (any)."""
    requirements: list[str] = field(default_factory=list)
    """pip requirement lines (options such as ``--index-url`` included)."""
    no_deps: bool = False
    """True for a lock: install exactly these, resolve nothing."""
    pythonpath: list[str] = field(default_factory=list)
    """Repo-relative folders of the project's own code (put on PYTHONPATH at run time)."""
    skipped: list[dict[str, Any]] = field(default_factory=list)
    """Packages left out on purpose: ``{name, reason, blocking}``."""
    material: dict[str, Any] = field(default_factory=dict)
    """What decides the environment's content (hashed into the cache key)."""
    notes: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    """Packages added for octostore's own needs (nbclient to execute a notebook)."""
    workdir: str | None = None
    """Folder to install from (relative ``-r``/``-c`` paths), absolute."""
    original_lock: dict[str, Any] | None = None
    """The run's captured lock, when there is one (to list what differs)."""
    interpreter: str | None = None
    """For ``current``: the interpreter to use as it is."""
    why: str = ""
    """Which environment file was used and why not the others, when several could be."""
    capture_plugin: bool = False
    """The lock had ``octostore-capture``: it is installed from the wheel this octostore
    builds (:mod:`..capture_wheel`), as ``octostore capture install`` does; no index has it."""

    def key_material(self) -> dict[str, Any]:
        """What decides the environment's content.  An exact closure (a lock, or requirements
        resolved by uv) is keyed by its pins alone, whatever file it came from: two runs whose
        environments resolve to the same packages share one build."""
        options = sorted(r for r in self.requirements if r.startswith("-"))
        if self.no_deps:
            pins = sorted(normalize_pin(r) for r in self.requirements if not r.startswith("-"))
            if self.capture_plugin:  # the wheel's files, not only its version
                pins.append(f"{capture_wheel.DIST}=={capture_wheel.version()} "
                            f"@ {capture_wheel.wheel_digest()}")
            return {"format": KEY_FORMAT, "closure": pins, "options": options,
                    "extras": sorted(self.extras)}
        return {"format": KEY_FORMAT, "material": self.material, "options": options,
                "extras": sorted(self.extras)}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "python": self.python,
                "packages": len([r for r in self.requirements if not r.startswith("-")]),
                "skipped": self.skipped, "notes": self.notes, "extras": self.extras,
                **({"why": self.why} if self.why else {})}


def normalize_pin(line: str) -> str:
    """``Foo_Bar==1.0`` -> ``foo-bar==1.0`` (PEP 503 names; the rest of the line as it is)."""
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", line)
    if not m:
        return line.strip()
    name, rest = capture_envlock.normalize(m.group(1)), m.group(2).strip()
    return f"{name} {rest}" if rest.startswith("@") else name + rest


# -- captured -----------------------------------------------------------------------------------
def find_lock(repo: str, digest: str) -> tuple[dict[str, Any], str] | None:
    """The lock named by an ``octostore.env`` tag, and where it was found; None when lost."""
    candidates = [capture_files.lock_path(repo, digest)]
    for path in candidates:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if capture_files.sha256_hex(data) == digest:
            return json.loads(data), os.path.relpath(path, repo)
    text = capture_envlock.cached_text(digest)
    if text is not None and capture_files.sha256_hex(text.encode("utf-8")) == digest:
        return json.loads(text), "the capture cache"
    return None


def from_lock(lock: dict[str, Any], digest: str, where: str) -> EnvSpec:
    python = (lock.get("python") or {}).get("version")
    spec = EnvSpec("captured", f"lock {digest[:12]} ({where})", python=python, no_deps=True,
                   material={"lock": digest}, original_lock=lock)
    impl = (lock.get("python") or {}).get("implementation")
    if impl and impl != "cpython":
        spec.notes.append(f"the run used {impl}; CPython is used here")
    for pkg in lock.get("packages") or []:
        name, version = str(pkg.get("name", "")), str(pkg.get("version", ""))
        if not name:
            continue
        if name in NEVER_INSTALL:
            spec.skipped.append({"name": name, "reason": "octostore itself is not needed to "
                                 "run the run", "blocking": False})
            continue
        if name == capture_wheel.DIST:
            spec.capture_plugin = True
            spec.notes.append(f"{name} (octostore's capture plugin) is installed from the "
                              "wheel this octostore builds (no package index has it)")
            if version != capture_wheel.version():
                spec.notes.append(f"{name} {version} was in the run's environment; this "
                                  f"octostore installs its own, {capture_wheel.version()}")
            continue
        if pkg.get("editable"):
            path = str(pkg.get("path") or "")
            if path and not os.path.isabs(path) and not path.startswith(".."):
                spec.pythonpath.append(path)
                spec.notes.append(f"{name} (editable, {path} in the repo) is used from the "
                                  "checked-out code")
            else:
                where = path or "an unknown folder"
                spec.skipped.append({"name": name, "blocking": True,
                                     "reason": f"editable install from {where}, outside the repo"})
            continue
        spec.requirements.append(f"{name}=={version}" if version else name)
    return spec


# -- model --------------------------------------------------------------------------------------
MODEL_ENV_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")


@dataclass
class RunModel:
    """One model a run logged: a folder of its artifacts with an ``MLmodel`` (MLflow 2), or a
    logged model of its own (MLflow 3, ``<exp>/models/m-<id>/artifacts``)."""

    name: str
    model_id: str | None
    folder: str
    created: int = 0

    def label(self) -> str:
        return f"{self.name} ({self.model_id})" if self.model_id else f"{self.name} (artifacts)"

    def usable(self) -> bool:
        return any(os.path.isfile(os.path.join(self.folder, n)) for n in MODEL_ENV_FILES)


def _artifact_model_dirs(artifact_dir: str | None) -> list[str]:
    found: list[str] = []
    if not artifact_dir or not os.path.isdir(artifact_dir):
        return found
    for dirpath, dirnames, filenames in os.walk(artifact_dir):
        depth = os.path.relpath(dirpath, artifact_dir).count(os.sep)
        if "MLmodel" in filenames:
            found.append(dirpath)
            dirnames[:] = []
        elif depth >= 3:
            dirnames[:] = []
    return found


def run_models(run: Any, sources: dict[str, Any], top: str,
               artifact_dir: str | None) -> list[RunModel]:
    """The run's models: folders of its artifacts with an ``MLmodel`` (MLflow 2 layout), then
    its logged models (MLflow 3) from its store, live or committed.  A committed model whose
    artifacts are outside the repo is not offered (a cloned repo is untrusted input)."""
    from ..sources.models import models_of

    out = [RunModel(os.path.relpath(d, artifact_dir).replace(os.sep, "/") if artifact_dir
                    else d, None, d) for d in _artifact_model_dirs(artifact_dir)]
    info = sources.get(getattr(run, "source", "")) if sources else None
    for m in models_of(run, info.kind if info else None, top):
        if not m.artifact_dir:
            continue
        created = m.meta.get("creation_timestamp")
        out.append(RunModel(m.name or m.model_id, m.model_id, m.artifact_dir,
                            created if isinstance(created, int) else 0))
    known = {os.path.realpath(m.folder) for m in out}
    for d in find_model_dirs(artifact_dir, run.run_id):  # a model folder without a meta.yaml
        if os.path.realpath(d) not in known:
            out.append(RunModel(os.path.basename(os.path.dirname(d)), None, d))
    if info is not None and info.committed:
        real_top = os.path.realpath(top)
        out = [m for m in out if os.path.realpath(m.folder).startswith(real_top + os.sep)]
    return out


def choose_model(models: list[RunModel], short: str, wanted: str | None = None
                 ) -> tuple[RunModel | None, str]:
    """The model whose environment a reproduction uses: ``wanted`` (a name or model id), else
    the one named ``model`` (the latest logged), else the only one.  Returns (model, why not)."""
    usable = [m for m in models if m.usable()]
    if wanted:
        hits = [m for m in usable if wanted in (m.name, m.model_id)]
        if hits:
            return max(hits, key=lambda m: (m.model_id is not None, m.created)), ""
        return None, f"run {short} logged no model named {wanted!r} with an environment file"
    if not usable:
        if models:
            return None, (f"run {short}'s model(s) {', '.join(m.label() for m in models[:5])} "
                          "have no requirements.txt, python_env.yaml or conda.yaml")
        return None, f"run {short} logged no model"
    named = [m for m in usable if m.name == "model"]
    if named:
        return max(named, key=lambda m: (m.model_id is not None, m.created)), ""
    if len(usable) == 1:
        return usable[0], ""
    return None, (f"run {short} logged {len(usable)} models "
                  f"({', '.join(m.label() for m in usable[:8])}) and none is named 'model', "
                  "so which one's environment to use is not clear")


def find_model_dirs(artifact_dir: str | None, run_id: str) -> list[str]:
    """Folders holding an ``MLmodel`` logged by the run (in its artifacts, or MLflow 3 models
    whose ``MLmodel`` names the run, found beside the run folder)."""
    found = _artifact_model_dirs(artifact_dir)
    if not artifact_dir or not os.path.isdir(artifact_dir):
        return found
    # MLflow 3 logs models beside the runs: <experiment>/models/<model id>/artifacts/MLmodel.
    exp_dir = os.path.dirname(os.path.dirname(artifact_dir.rstrip(os.sep)))
    models = os.path.join(exp_dir, "models")
    try:
        entries = sorted(os.listdir(models))
    except OSError:
        entries = []
    for name in entries:
        folder = os.path.join(models, name, "artifacts")
        try:
            with open(os.path.join(folder, "MLmodel"), encoding="utf-8",
                      errors="replace") as f:
                text = f.read(64 * 1024)
        except OSError:
            continue
        if re.search(rf"^run_id:\s*['\"]?{re.escape(run_id)}['\"]?\s*$", text, re.M):
            found.append(folder)
    return found


def pythonpath_roots(worktree: str, rels: list[str]) -> list[str]:
    """Absolute import roots for the project folders ``rels`` (``src/`` layout aware)."""
    out: list[str] = []
    for rel in dict.fromkeys(rels):
        folder = os.path.normpath(os.path.join(worktree, rel))
        src = os.path.join(folder, "src")
        root = src if os.path.isdir(src) else folder
        if root not in out:
            out.append(root)
    return out


def diff_locks(original: dict[str, Any] | None, built: dict[str, Any] | None,
               editable_ok: set[str] | None = None) -> list[dict[str, Any]]:
    """What differs between the run's lock and the environment it got here.

    Each entry is ``{what, name, original, reproduced}`` with ``what`` one of
    ``python``, ``platform``, ``package`` (a version differs), ``missing`` (not
    installed here), ``extra`` (only here).
    """
    if not original or not built:
        return []
    out: list[dict[str, Any]] = []
    ov = (original.get("python") or {}).get("version")
    bv = (built.get("python") or {}).get("version")
    if ov != bv:
        out.append({"what": "python", "name": "python", "original": ov, "reproduced": bv})
    op = (original.get("platform") or {}).get("tag")
    bp = (built.get("platform") or {}).get("tag")
    if op != bp:
        out.append({"what": "platform", "name": "platform", "original": op, "reproduced": bp})
    skip = NEVER_INSTALL | (editable_ok or set())
    a = {p["name"]: p for p in original.get("packages") or [] if p.get("name") not in skip}
    b = {p["name"]: p for p in built.get("packages") or [] if p.get("name") not in skip}
    for name in sorted(set(a) | set(b)):
        pa, pb = a.get(name), b.get(name)
        if pa is not None and pa.get("editable"):
            continue
        if pb is None:
            out.append({"what": "missing", "name": name,
                        "original": pa.get("version") if pa else None, "reproduced": None})
        elif pa is None:
            out.append({"what": "extra", "name": name, "original": None,
                        "reproduced": pb.get("version")})
        elif pa.get("version") != pb.get("version"):
            out.append({"what": "package", "name": name, "original": pa.get("version"),
                        "reproduced": pb.get("version")})
    return out

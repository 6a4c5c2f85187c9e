"""``--set KEY=VALUE``: changing a run's parameters from outside, where that is possible.

* **A captured command line** (``octostore.argv``): the arguments after the
  script (or ``-m module``) are rewritten in the form they already have:
  ``--key value``, ``--key=value`` or ``key=value`` (Hydra style, ``+key``
  and dotted keys included).  ``-`` and ``_`` are the same in a key
  (``n_estimators`` sets ``--n-estimators``), as argparse maps them.  A key
  that is not on the command line but is one of the run's logged params is
  appended in the style the command line uses (argparse scripts usually log
  their defaults, which never appear on the command line); any other key is
  refused, since the script would not know it.
* **An MLproject entry point**: its declared parameters, rendered into its
  command as MLflow renders them (values shell-quoted).  The command runs in a
  shell, so a key that the entry point does not declare is refused
  (:func:`check_mlproject_keys`), never appended: ``--set 'x;touch PWNED=1'``
  (which the CI workflow's ``overrides`` input can carry) must not become shell
  code.  Anything rendered outside a placeholder is quoted, key and value.
* Anything else (a bare script, a notebook without a ``parameters`` cell)
  has no parameters that can be changed from outside: :class:`CannotOverride`.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

PY_OPTS_WITH_VALUE = {"-W", "-X", "-Q"}
"""Interpreter options that take the next argument as their value."""
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_HYDRA = re.compile(r"^(\+{0,2}|~)([A-Za-z_][\w.\-/]*)=(.*)$", re.S)
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


class CannotOverride(ValueError):
    """``--set`` asked for something the run's entry point cannot take."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


def parse_sets(raw: Any) -> dict[str, str]:
    """``["k=v", ...]`` or ``{"k": v}`` to ``{"k": "v"}``.

    Raises:
        CannotOverride: an item is not ``KEY=VALUE``.
    """
    out: dict[str, str] = {}
    if raw is None:
        return out
    if isinstance(raw, dict):
        for k, v in raw.items():
            if not isinstance(k, str) or not k.strip():
                raise CannotOverride(f"--set key {k!r} is empty", "write --set KEY=VALUE")
            out[k.strip()] = v if isinstance(v, str) else _plain(v)
        return out
    for item in raw:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise CannotOverride(f"--set {item!r} is not KEY=VALUE", "write --set KEY=VALUE, "
                                 "e.g. --set n_estimators=300")
        out[key.strip()] = value
    return out


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def norm(key: str) -> str:
    return key.lstrip("-+~").replace("-", "_")


def script_start(argv: list[str]) -> int:
    """Index of the first argument that belongs to the script (after ``python [opts] x.py``)."""
    if not argv:
        return 0
    if not argv[0].startswith(("python", "pypy")) and "/python" not in argv[0]:
        return 1
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("-m", "-c"):
            return i + 2
        if a in PY_OPTS_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-") and a != "-":
            i += 1
            continue
        return i + 1  # the script
    return i


def _is_value(token: str) -> bool:
    return not token.startswith("-") or bool(_NUMBER.match(token)) or token == "-"


def rewrite_argv(argv: list[str], sets: dict[str, str],
                 params: dict[str, str]) -> tuple[list[str], list[dict[str, str]]]:
    """``argv`` with ``sets`` applied, and what was changed (``{key, how, arg}`` each).

    Raises:
        CannotOverride: a key is neither on the command line nor a logged param.
    """
    out = list(argv)
    start = script_start(out)
    changes: list[dict[str, str]] = []
    for key, value in sets.items():
        want = norm(key)
        done = False
        i = start
        while i < len(out):
            a = out[i]
            if a == "--":
                break
            if a.startswith("--") and len(a) > 2:
                name, eq, _old = a[2:].partition("=")
                if norm(name) == want:
                    if eq:
                        out[i] = f"--{name}={value}"
                        changes.append({"key": key, "how": "replaced", "arg": out[i]})
                    elif i + 1 < len(out) and _is_value(out[i + 1]):
                        out[i + 1] = value
                        changes.append({"key": key, "how": "replaced", "arg": f"{a} {value}"})
                        i += 1
                    elif value.lower() in FALSE:  # a flag: false removes it
                        del out[i]
                        changes.append({"key": key, "how": "removed flag", "arg": a})
                        i -= 1
                    elif value.lower() in TRUE:
                        changes.append({"key": key, "how": "kept flag", "arg": a})
                    else:
                        out.insert(i + 1, value)
                        changes.append({"key": key, "how": "replaced", "arg": f"{a} {value}"})
                        i += 1
                    done = True
            else:
                m = _HYDRA.match(a)
                if m and norm(m.group(2)) == want:
                    out[i] = f"{m.group(1)}{m.group(2)}={value}"
                    changes.append({"key": key, "how": "replaced", "arg": out[i]})
                    done = True
            i += 1
        if done:
            continue
        logged = {norm(k): k for k in params}
        if want not in logged:
            raise CannotOverride(
                f"{key} is neither on the run's command line ({shlex.join(argv)}) nor one of "
                "its logged params",
                "check the name with `octostore run RUN_ID`; only a param the script takes "
                "can be set")
        arg = _append_style(out[start:], key)
        pieces = [arg, value] if arg.startswith("--") else [f"{arg}={value}"]
        end = out.index("--", start) if "--" in out[start:] else len(out)
        out[end:end] = pieces
        changes.append({"key": key, "how": "appended", "arg": " ".join(pieces)})
    return out, changes


def _append_style(args: list[str], key: str) -> str:
    """The argument for ``key`` in the style the command line already uses."""
    options = [a for a in args if a.startswith("--") and len(a) > 2]
    hydra = [a for a in args if not a.startswith("-") and _HYDRA.match(a)]
    if hydra and not options:
        return key
    names = [a[2:].partition("=")[0] for a in options]
    if any("_" in n for n in names) and not any("-" in n for n in names):
        return "--" + key.replace("-", "_")
    return "--" + key.replace("_", "-")


def check_mlproject_keys(sets: dict[str, str], declared: dict[str, Any], entry: str) -> None:
    """Refuse a ``--set`` key that MLproject entry point ``entry`` does not declare.

    Raises:
        CannotOverride: a key is not one of ``declared``, with the valid ones.
    """
    unknown = [k for k in sets if k not in declared]
    if not unknown:
        return
    valid = ", ".join(sorted(declared)) or "none"
    shown = ", ".join(repr(k) for k in unknown[:5])
    raise CannotOverride(
        f"--set {shown} is not a parameter of the MLproject entry point {entry!r} (its "
        f"parameters: {valid})", "set only the parameters the entry point declares")


def render_mlproject(command: str, declared: dict[str, dict[str, Any]],
                     values: dict[str, str]) -> tuple[str, list[str]]:
    """An MLproject entry point's command with its parameters, as ``mlflow run`` builds it.

    ``declared`` maps names to ``{"type", "default"}``; ``values`` are the run's params
    with the overrides on top.  Returns the command and the names that had no value.
    """
    params: dict[str, str] = {}
    missing: list[str] = []
    for name, spec in declared.items():
        if name in values:
            params[name] = shlex.quote(str(values[name]))
        elif spec.get("default") is not None:
            params[name] = shlex.quote(_plain(spec["default"]))
        else:
            missing.append(name)
            params[name] = "''"
    extra = {k: v for k, v in values.items() if k not in declared}
    try:
        text = command.format(**params)
    except (KeyError, IndexError, ValueError) as exc:
        raise CannotOverride(f"the MLproject command {command!r} cannot be rendered ({exc})",
                             "fix the entry point's command in MLproject") from None
    parts = [text] + [f"{shlex.quote('--' + str(k))} {shlex.quote(str(v))}"
                      for k, v in extra.items()]
    return " ".join(parts), missing

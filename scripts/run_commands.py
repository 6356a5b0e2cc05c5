"""What `make run` starts: the command line of each child (sandbox core, web, worker, scheduler, migrations).

Console scripts of pyproject.toml run from the venv's bin/ when installed,
straight from their module otherwise; the web server is `encargo-web`
(gunicorn with web/gunicorn_conf.py, the configuration every deployment uses).
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from scripts.run_environment import BIN_DIR, ROOT


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    command: list[str]
    module: str  # the project module it needs (checked before starting)
    marker: str  # a string in its /proc cmdline, to recognise it again for `--stop`


def project_scripts(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    with pyproject.open("rb") as handle:
        scripts: dict[str, str] = tomllib.load(handle)["project"]["scripts"]
    return scripts


def entry_point_spec(name: str, script: str, bindir: Path = BIN_DIR) -> ProcessSpec:
    """Run a console script of pyproject.toml; straight from its module when not installed (yet)."""
    target = project_scripts()[script]
    module, _, func = target.partition(":")
    exe = bindir / script
    if exe.exists():
        return ProcessSpec(name, [str(exe)], module, script)
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    return ProcessSpec(name, [sys.executable, "-c", code], module, module)


def web_spec(bindir: Path = BIN_DIR) -> ProcessSpec:
    """`encargo-web`: gunicorn configured by web/gunicorn_conf.py, as in the image and compose.

    It listens where WEB_BIND says; `make run` sets that to its own web port
    (scripts/run_environment.py). The process execs gunicorn, so it is recognised by "gunicorn".
    """
    return replace(entry_point_spec("web", "encargo-web", bindir), marker="gunicorn")


def process_specs(bindir: Path = BIN_DIR) -> list[ProcessSpec]:
    """The long-running children, in start order (the core first: the others call it)."""
    return [
        entry_point_spec("sandbox-core", "encargo-sandbox-core", bindir),
        web_spec(bindir),
        entry_point_spec("worker", "encargo-worker", bindir),
        entry_point_spec("scheduler", "encargo-scheduler", bindir),
    ]


def module_exists(module: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

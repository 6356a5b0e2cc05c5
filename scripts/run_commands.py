"""What `make run` starts: the command line of each child (sandbox core, web, worker, scheduler, migrations).

Console scripts of pyproject.toml run from the venv's bin/ when installed,
straight from their module otherwise; the web server is gunicorn serving
`web.app:app` with threads.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from scripts.run_environment import BIN_DIR, ROOT, Ports


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


def _gunicorn_has_option(flag: str) -> bool:
    try:
        from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]
    except ImportError:
        return False
    return any(flag in (setting.cli or ()) for setting in KNOWN_SETTINGS)


def web_spec(ports: Ports, bindir: Path = BIN_DIR) -> ProcessSpec:
    exe = bindir / "gunicorn"
    gunicorn = [str(exe)] if exe.exists() else [sys.executable, "-m", "gunicorn"]
    # gunicorn writes no access log unless --access-logfile is given; errors go to stderr.
    command = [
        *gunicorn, "web.app:app",
        "--bind", f"127.0.0.1:{ports.web}",
        "--worker-class", "gthread", "--workers", "2", "--threads", "8",
        "--timeout", "30", "--graceful-timeout", "10",
    ]
    # gunicorn >= 25 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl) that
    # every gunicorn of the user shares (tests start their own); this one needs none.
    if _gunicorn_has_option("--no-control-socket"):
        command.append("--no-control-socket")
    return ProcessSpec("web", command, "app", "gunicorn")


def process_specs(ports: Ports, bindir: Path = BIN_DIR) -> list[ProcessSpec]:
    """The long-running children, in start order (the core first: the others call it)."""
    return [
        entry_point_spec("sandbox-core", "encargo-sandbox-core", bindir),
        web_spec(ports, bindir),
        entry_point_spec("worker", "encargo-worker", bindir),
        entry_point_spec("scheduler", "encargo-scheduler", bindir),
    ]


def module_exists(module: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()

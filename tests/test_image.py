"""The deployable image, tested without a Docker daemon (none runs on these machines, nor in CI).

Two halves:
- the Dockerfile and docker-compose.yml are parsed and held to their rules: dependencies installed
  before the code is copied, a non-editable install, a non-root user, health checks for every
  long-running service, the demo's sandbox core and simulator only in the `demo` profile, the
  migrations first;
- the Dockerfile's install steps are replayed into a fresh virtualenv: the build context (the
  checkout filtered by .dockerignore) is copied, a wheel is built from it and installed with
  `pip install --no-deps` (non-editable) into a venv that borrows this environment's third-party
  packages (a .pth line; the editable project's own .pth files are not read from there), and the
  entry points and health checks run from that venv, in a directory outside the checkout, against
  the test Redis and PostgreSQL.

Not tested here: `docker build` itself (the base image, pip resolving the dependencies inside it,
the layer cache), and the containers as Docker runs them (network, user, HEALTHCHECK timing).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from packaging.requirements import Requirement
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from config import Settings
from runtime import presence
from tests.harness import rows, text_payload
from worker import healthcheck

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PYPROJECT = ROOT / "pyproject.toml"

# The Dockerfile's install steps, replayed below with these very arguments (a test asserts they are there).
WHEEL_STEP = "pip wheel --no-deps --wheel-dir /wheels ."
INSTALL_STEP = "pip install --no-deps /tmp/wheels/*.whl"
WEB_COMMAND = ["encargo-web"]
APP_USER_UID = "10001"
# Top-level directories that are not packages but are read at run time next to the packages
# (storage/migrate.py: migrations/; services/faq.py and services/geography.py: faq_data/).
RUNTIME_DATA_DIRS = ("migrations", "faq_data")
# Files in packages that only document the code (not read at run time).
DOC_SUFFIXES = (".mmd", ".md")
START_TIMEOUT_S = 40.0


# --- the Dockerfile and docker-compose.yml, parsed ---------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (a stage starts at FROM); continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append(Instruction(keyword.upper(), args.strip()))
    return stages


def stage_named(stages: list[list[Instruction]], name: str) -> list[Instruction]:
    for stage in stages:
        if re.search(rf"\bAS\s+{re.escape(name)}$", stage[0].args, re.IGNORECASE):
            return stage
    raise AssertionError(f"no stage named {name!r} in the Dockerfile")


def copy_sources(instruction: Instruction) -> tuple[list[str], list[str]]:
    """(flags, sources) of a COPY instruction (its last word is the destination)."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def app_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's image."""
    return {name: svc for name, svc in config["services"].items() if "build" in svc}


def active(service: dict[str, Any], profile: str) -> bool:
    """Whether `docker compose --profile <profile> up` starts this service."""
    profiles = service.get("profiles")
    return not profiles or profile in profiles


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {str(k): str(v) for k, v in env.items()}


# --- the build context and the install ---------------------------------------------------------------


def dockerignore_rules() -> list[re.Pattern[str]]:
    """.dockerignore's patterns as regular expressions over paths relative to the context (Docker's rules:
    `*` and `?` stay inside one path segment, `**` spans any number of them)."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        assert not pattern.startswith("!"), "exceptions (!) are not replayed by this test: extend it"
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append(re.compile(regex + "$"))
    return rules


def copy_build_context(destination: Path) -> list[str]:
    """Copy what `docker build .` sends (the checkout minus .dockerignore); returns the files' relative paths."""
    rules = dockerignore_rules()
    copied: list[str] = []

    def ignored(relative: str) -> bool:
        return any(rule.match(relative) for rule in rules)

    for directory, dirnames, filenames in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        dirnames[:] = sorted(d for d in dirnames if not ignored((base / d).as_posix()))
        for name in sorted(filenames):
            relative = (base / name).as_posix()
            if ignored(relative):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(directory) / name, target)
            copied.append(relative)
    return copied


@dataclass(frozen=True)
class Install:
    """The image's install replayed: a venv with Encargo from a wheel, and a working directory outside the checkout."""

    context_files: list[str]
    wheel: Path
    venv: Path
    workdir: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def env(self, base: dict[str, str], **extra: str) -> dict[str, str]:
        """What a process of the image gets: the venv's scripts first on PATH, nothing of the checkout."""
        keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        venv_bin = str(Path(sys.executable).parent)
        path = [str(self.bin)] + [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
        tmp = self.home / "tmp"
        tmp.mkdir(exist_ok=True)
        return {**keep, **base, "PATH": os.pathsep.join(path), "HOME": str(self.home), "TMPDIR": str(tmp),
                "LOG_LEVEL": "INFO", **extra}

    def run(self, args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def command(self, docker_command: list[str]) -> list[str]:
        """A command as the image runs it (`python` and the console scripts on PATH), pointed at the venv."""
        first, *rest = docker_command
        if first == "python":
            return [self.python, *rest]
        return [str(self.bin / first), *rest]


def borrow_script(source: Path, venv_bin: Path, python: str) -> None:
    """A third-party console script (gunicorn, rq) for the venv: the same file, run by the venv's Python."""
    lines = source.read_text().splitlines(keepends=True)
    target = venv_bin / source.name
    target.write_text(f"#!{python}\n" + "".join(lines[1:]))
    target.chmod(0o755)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    base = tmp_path_factory.mktemp("image")
    context = base / "context"
    files = copy_build_context(context)
    wheels = base / "wheels"
    # The Dockerfile's wheel stage: `pip wheel --no-deps --wheel-dir /wheels .` in the context.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."],
                           cwd=context, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("encargo-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    # The dependencies the Dockerfile installs from pyproject.toml are this environment's (see
    # test_dependency_list_matches_pyproject). A directory named in a .pth file joins sys.path, but the .pth
    # files inside it (the editable install of the checkout) are not read: Encargo comes from the wheel only.
    Path(venv_site, "_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # The image's final stage: `pip install --no-deps /tmp/wheels/*.whl`.
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    own_python = Path(sys.executable)
    for script in own_python.parent.iterdir():
        if script.is_file() and not (venv / "bin" / script.name).exists() and not script.name.startswith("python"):
            with script.open("rb") as fh:
                if fh.readline().strip() == f"#!{own_python}".encode():
                    borrow_script(script, venv / "bin", python)
    workdir = base / "run"
    workdir.mkdir()
    home = base / "home"
    home.mkdir()
    return Install(context_files=files, wheel=wheel, venv=venv, workdir=workdir, home=home)


# --- processes started from the install --------------------------------------------------------------


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def start(installed: Install) -> Iterator[Callable[..., Started]]:
    """Start an entry point of the install (logs to a file); everything started is stopped at the end."""
    started: list[Started] = []

    def run(name: str, args: list[str], env: dict[str, str]) -> Started:
        log = installed.home / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(installed.command(args), cwd=installed.workdir, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        item = Started(name, proc, log)
        started.append(item)
        return item

    yield run
    for item in reversed(started):
        stop(item)


def stop(item: Started) -> None:
    if item.proc.poll() is None:
        item.proc.send_signal(signal.SIGTERM)
        try:
            item.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            item.proc.kill()
            item.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], what: str, *processes: Started,
               timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in processes:
            if item.proc.poll() is not None:
                raise AssertionError(f"{item.name} exited ({item.proc.returncode}) while waiting for {what}:\n"
                                     + item.tail())
        if condition():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {item.name}\n{item.tail()}" for item in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def http_get(url: str) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET; (0, {}) while nothing listens."""
    try:
        response = httpx.get(url, timeout=3)
    except httpx.TransportError:
        return 0, {}
    return response.status_code, response.json() if response.content else {}


def exit_status(installed: Install, docker_command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a health check as Docker would (["CMD", ...] form) from the install: its status and stderr."""
    assert docker_command[0] == "CMD", "health checks are written in the exec form: no shell in the command"
    result = installed.run(installed.command(docker_command[1:]), env, timeout=30)
    return result.returncode, result.stderr.strip()


# --- the Dockerfile's rules --------------------------------------------------------------------------


def test_dockerfile_installs_the_dependencies_before_the_code_and_the_code_from_a_wheel() -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    wheel_stage = stage_named(stages, "wheel")
    assert [shlex.split(i.args) for i in wheel_stage if i.keyword == "RUN"] == [shlex.split(WHEEL_STEP)]
    final = stages[-1]
    runs = [i for i in final if i.keyword == "RUN"]
    copies = [i for i in final if i.keyword in ("COPY", "ADD")]
    dependencies = next(n for n, i in enumerate(final) if i.keyword == "RUN" and "pip install -r" in i.args)
    code = next(n for n, i in enumerate(final) if i.keyword == "COPY" and "--from=wheel" in i.args)
    for instruction in copies:
        flags, sources = copy_sources(instruction)
        if "--from=wheel" in flags:
            continue
        # Before the dependencies only pyproject.toml may enter the final stage; the code never does.
        assert sources == ["pyproject.toml"], f"the final stage copies {sources}: only the wheel brings code"
        assert final.index(instruction) < dependencies
    assert dependencies < code
    assert any(INSTALL_STEP in i.args for i in runs[runs.index(final[dependencies]) + 1:])
    for instruction in (i for stage in stages for i in stage if i.keyword == "RUN"):
        words = shlex.split(instruction.args)
        assert "-e" not in words and "--editable" not in words, f"an editable install: {instruction.args}"


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    final = dockerfile_stages(DOCKERFILE.read_text())[-1]
    users = [n for n, i in enumerate(final) if i.keyword == "USER"]
    assert users, "no USER: the processes would run as root"
    user = final[users[-1]].args
    assert user not in ("root", "0") and not user.startswith("0:")
    assert any(i.keyword == "RUN" and f"--uid {APP_USER_UID}" in i.args and i.args.rstrip().endswith(f" {user}")
               for i in final), f"the user {user} is created with uid {APP_USER_UID}"
    assert all(i.keyword != "RUN" for i in final[users[-1]:]), "a RUN after USER needs root again"
    healthchecks = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0].args and "urllib" in healthchecks[0].args
    (cmd,) = [i for i in final if i.keyword == "CMD"]
    assert json.loads(cmd.args) == WEB_COMMAND


def test_dependency_list_matches_pyproject_and_this_environment_has_it() -> None:
    """The Dockerfile's `python -c` that lists the dependencies reads pyproject.toml right, and the install
    replayed below borrows exactly those packages from this environment (versions within the ranges)."""
    final = dockerfile_stages(DOCKERFILE.read_text())[-1]
    (run,) = [i for i in final if i.keyword == "RUN" and "tomllib" in i.args]
    words = shlex.split(run.args)
    program = words[words.index("-c") + 1]
    (copied,) = [i for i in final if i.keyword == "COPY" and copy_sources(i)[1] == ["pyproject.toml"]]
    destination = shlex.split(copied.args)[-1]
    assert destination in program
    listed = subprocess.run([sys.executable, "-c", program.replace(destination, str(PYPROJECT))],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split()
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert [Requirement(r) for r in listed] == [Requirement(r) for r in declared]
    for requirement in map(Requirement, declared):
        version = metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} here is {version}"


# --- docker-compose.yml's rules ----------------------------------------------------------------------


def test_compose_production_profile_has_no_demo_parts() -> None:
    services = app_services(compose())
    production = {name: svc for name, svc in services.items() if active(svc, "production")}
    assert {"migrate", "web", "worker", "scheduler"} <= production.keys()
    assert "sandbox-core" not in production
    for name, svc in production.items():
        env = environment(svc)
        assert "sandbox-core" not in (svc.get("depends_on") or {}), name
        assert "sandbox-core" not in json.dumps(env), name
        assert env.get("SIMULATOR_ENABLED", "false") == "false", name
        if name != "migrate":
            assert env["CORE_API_URL"].startswith("${CORE_API_URL:?"), "fails fast when .env lacks it"
            assert env["ENCARGO_ENV"] == "production"
    assert "command" not in production["web"], "the web service runs the image's CMD (one command line)"


def test_compose_demo_profile_runs_the_sandbox_core_and_the_simulator() -> None:
    services = app_services(compose())
    demo = {name: svc for name, svc in services.items() if active(svc, "demo")}
    assert demo["sandbox-core"]["command"] == ["encargo-sandbox-core"]
    assert demo["sandbox-core"]["profiles"] == ["demo"]
    commands = {name: svc.get("command") for name, svc in demo.items()}
    assert sorted(map(str, commands.values())) == sorted(map(str, [
        ["encargo-migrate"], ["encargo-sandbox-core"], None, ["encargo-worker"], ["encargo-scheduler"]]))
    for name, svc in demo.items():
        if name in ("migrate", "sandbox-core"):
            continue
        env = environment(svc)
        assert env["CORE_API_URL"] == "http://sandbox-core:8100", name
        assert env["SIMULATOR_ENABLED"] == "true", name


@pytest.mark.parametrize("profile", ["production", "demo"])
def test_compose_health_and_start_order(profile: str) -> None:
    config = compose()
    started = {name: svc for name, svc in config["services"].items() if active(svc, profile)}
    dockerfile_health = any(i.keyword == "HEALTHCHECK" for i in dockerfile_stages(DOCKERFILE.read_text())[-1])
    for name, svc in started.items():
        for dependency in svc.get("depends_on") or {}:
            assert dependency in started, f"{name} depends on {dependency}, which {profile} does not start"
    for name, svc in app_services(config).items():
        if name not in started:
            continue
        if name == "migrate":
            assert svc["restart"] == "no"
            assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        if name != "sandbox-core":  # stands in for the company's system: it reads none of our tables
            assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        check = svc.get("healthcheck")
        if check is None:
            assert "command" not in svc and dockerfile_health, f"{name} has no health check"
        else:
            assert not check.get("disable") and check["test"][0] == "CMD", name
    for name in ("postgres", "redis"):
        assert config["services"][name]["healthcheck"]["test"]


# --- the worker's container check, against the test Redis ------------------------------------------


def test_worker_check_counts_only_live_groups_of_this_host(settings: Settings, redis_conn: Any) -> None:
    host = socket.gethostname()
    presence.report(redis_conn, presence.group_key("another-host:7"), expected=4, alive=4)
    presence.report(redis_conn, presence.group_key(f"{host}:1"), expected=4, alive=0)
    presence.report(redis_conn, presence.group_key(f"{host}x:2"), expected=4, alive=4)  # another host's prefix
    assert healthcheck.worker_problem(settings) == f"no live worker process reported by host {host}"
    presence.report(redis_conn, presence.group_key(f"{host}:3"), expected=2, alive=1)
    assert healthcheck.live_workers(redis_conn, host) == 1
    assert healthcheck.worker_problem(settings) is None
    redis_conn.delete(presence.group_key(f"{host}:3"))  # expired: still listed in the set, counts nothing
    assert healthcheck.worker_problem(settings) is not None


def test_worker_check_is_unhealthy_when_redis_does_not_answer(settings: Settings) -> None:
    closed = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert healthcheck.worker_problem(closed) == "Redis did not answer (ConnectionError)"


# --- the install, run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_install_has_every_file_the_code_reads_from_beside_it(installed: Install) -> None:
    """Code finds its data as Path(__file__)-relative files: each must sit in site-packages where it sat in the
    checkout (texts, lexicon, prompts, templates, migrations/, faq_data/ ...)."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        in_wheel = set(wheel.namelist())
    packages = {name.split("/", 1)[0] for name in in_wheel if name.endswith("/__init__.py")}
    expected = [
        f for f in installed.context_files
        if "/" in f and (f.split("/", 1)[0] in packages or f.split("/", 1)[0] in RUNTIME_DATA_DIRS)
        and not f.endswith((".py", *DOC_SUFFIXES))
    ]
    assert any(f.startswith("migrations/") for f in expected) and any(f.startswith("faq_data/") for f in expected)
    missing = [f for f in expected if f not in in_wheel]
    assert not missing, f"not installed by a non-editable install (package-data / packages): {missing}"


@pytest.mark.slow
def test_nothing_runs_from_the_checkout(installed: Install, base_env: dict[str, str]) -> None:
    program = (
        "import sys, web.app, worker.main, worker.scheduler, storage.migrate, worker.healthcheck\n"
        "print('\\n'.join(sorted(getattr(m, '__file__', None) or '' for m in list(sys.modules.values()))))"
    )
    result = installed.run([installed.python, "-c", program], installed.env(base_env))
    assert result.returncode == 0, result.stderr[-3000:]
    files = [f for f in result.stdout.splitlines() if f]
    assert any(f.startswith(str(installed.venv)) and f.endswith("worker/main.py") for f in files)
    here = [f for f in files if f.startswith(f"{ROOT}/") and not f.startswith(f"{sys.prefix}/")]
    assert here == [], "imported from the checkout instead of the install"
    # The production web service does not need the demo's core: the web app is built without it.
    web_only = installed.run([installed.python, "-c", "import sys, web.app; web.app.create_app(); "
                              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sandbox_core'))"],
                             installed.env(base_env))
    assert (web_only.returncode, web_only.stdout.strip()) == (0, "[]"), web_only.stderr[-3000:]



@pytest.mark.slow
def test_migrate_from_the_install_applies_every_migration(installed: Install, services: dict[str, str],
                                                          base_env: dict[str, str]) -> None:
    server = services["database_url"].rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS encargo_image")
        conn.execute("CREATE DATABASE encargo_image")
    url = f"{server}/encargo_image"
    result = installed.run([str(installed.bin / "encargo-migrate")], installed.env(base_env, DATABASE_URL=url))
    assert result.returncode == 0, result.stderr[-3000:]
    with psycopg.connect(url) as conn:
        applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tenants = conn.execute("SELECT count(*) FROM tenants").fetchone()
    assert len(applied) == len(list((ROOT / "migrations").glob("*.sql"))) > 0
    assert tenants == (1,)


def process_env(installed: Install, base_env: dict[str, str], **extra: str) -> dict[str, str]:
    return installed.env(base_env, WORKER_PROCESSES="1", RECOVERY_INTERVAL_S="1", SIMULATOR_ENABLED="false",
                         **extra)


@pytest.mark.slow
def test_web_worker_and_core_from_the_install_answer_a_customer_and_report_health(
        installed: Install, start: Callable[..., Started], base_env: dict[str, str],
        db_pool: ConnectionPool) -> None:
    worker_check = compose()["services"]["worker"]["healthcheck"]["test"]
    (web_check,) = [i for i in dockerfile_stages(DOCKERFILE.read_text())[-1] if i.keyword == "HEALTHCHECK"]
    web_check_command = json.loads(web_check.args[web_check.args.index("CMD") + 3:].strip())
    core_port, web_port = free_port(), free_port()
    env = process_env(installed, base_env, CORE_API_URL=f"http://127.0.0.1:{core_port}",
                      WEB_BIND=f"127.0.0.1:{web_port}")

    assert exit_status(installed, worker_check, env)[0] == 1  # no worker runs yet
    core = start("sandbox-core", ["encargo-sandbox-core"], {**env, "SANDBOX_CORE_PORT": str(core_port)})
    web = start("web", WEB_COMMAND, env)
    worker = start("worker", ["encargo-worker"], env)
    base = f"http://127.0.0.1:{web_port}"
    wait_until(lambda: http_get(f"{base}/healthz")[0] == 200, "/healthz", web, core)
    assert exit_status(installed, ["CMD", *web_check_command], env)[0] == 0
    wait_until(lambda: (http_get(f"{base}/readyz")[1].get("workers") or {}).get("alive", 0) >= 1,
               "/readyz to show a live worker", web, worker)
    status, ready = http_get(f"{base}/readyz")
    assert status == 200 and ready["checks"] == {"postgresql": True, "redis": True}
    assert exit_status(installed, worker_check, env) == (0, "")

    # A customer's "Hola" through the installed web and worker: texts, lexicon and dialog load from site-packages.
    body = json.dumps(text_payload("50370000001", "Hola", "wamid.IMAGE1")).encode()
    response = httpx.post(f"{base}/webhooks/whatsapp", content=body, timeout=10, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta_webhook.sign(base_env["META_APP_SECRET"], body)})
    assert response.status_code == 200

    def answered() -> bool:
        events = rows(db_pool, "SELECT status FROM webhook_events")
        replies = rows(db_pool, "SELECT count(*) AS n FROM messages WHERE direction = 'out'")
        return [e["status"] for e in events] == ["processed"] and replies[0]["n"] >= 1

    wait_until(answered, "the reply to the customer", web, worker, core)

    # A stopped worker withdraws its group: the check says unhealthy at once.
    stop(worker)
    assert worker.proc.returncode == 0, worker.tail()
    code, reason = exit_status(installed, worker_check, env)
    assert code == 1 and "no live worker process" in reason


@pytest.mark.slow
def test_scheduler_from_the_install_beats_for_its_health_check(
        installed: Install, start: Callable[..., Started], base_env: dict[str, str]) -> None:
    scheduler_check = compose()["services"]["scheduler"]["healthcheck"]["test"]
    env = process_env(installed, base_env)
    heartbeat = Path(env["TMPDIR"]) / healthcheck.HEARTBEAT_NAME
    heartbeat.unlink(missing_ok=True)
    code, reason = exit_status(installed, scheduler_check, env)
    assert code == 1 and "no heartbeat yet" in reason

    scheduler = start("scheduler", ["encargo-scheduler"], env)
    wait_until(lambda: exit_status(installed, scheduler_check, env)[0] == 0, "the scheduler's heartbeat", scheduler)
    stop(scheduler)
    assert scheduler.proc.returncode == 0, scheduler.tail()
    old = time.time() - 3600  # as it would look an hour after the scheduler hung or died
    os.utime(heartbeat, (old, old))
    code, reason = exit_status(installed, scheduler_check, env)
    assert code == 1 and "stale" in reason

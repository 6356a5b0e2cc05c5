"""`make run` helpers that work without Redis or PostgreSQL: the env file, ports, the supervisor."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config import Settings, env_name
from sandbox_core.companies import parse_companies, serve
from scripts import bootstrap_env, run_all, run_services
from scripts.bootstrap_env import FIXED_VALUES, SECRET_GENERATORS, ensure_env_file, parse_env
from scripts.run_children import Console, ProcessGroup, StopFlag, supervise
from scripts.run_commands import module_exists, process_specs
from scripts.run_environment import PORT_VARS, Ports, StartupError, process_environment
from scripts.run_record import PidRecord, alive_and_matches, check_ports_free, port_is_free, port_owner

ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int, timeout: float = 10) -> bool:
    """The process ended (a zombie waiting for a reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


# --- .run/env --------------------------------------------------------------------------------


def test_env_file_has_every_value_and_the_settings_accept_it(tmp_path: Path) -> None:
    path = tmp_path / ".run" / "env"
    values, added = ensure_env_file(path)

    assert set(values) == set(FIXED_VALUES) | set(SECRET_GENERATORS)
    assert set(added) == set(values)
    assert parse_env(path.read_text()) == values
    assert path.stat().st_mode & 0o777 == 0o600
    Fernet(values["PHONE_ENCRYPTION_KEY"].encode())  # a valid Fernet key
    assert len({values[k] for k in SECRET_GENERATORS}) == len(SECRET_GENERATORS)  # all different
    settings = Settings.from_env(values)
    assert settings.env == "development"
    assert settings.whatsapp_provider == "local"
    assert settings.redis_url == "redis://127.0.0.1:6390/0"
    assert settings.database_url == "postgresql://encargo@127.0.0.1:5440/encargo"
    assert settings.core_api_url == "http://127.0.0.1:8100"
    assert settings.simulator_enabled is True


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "env"
    first, _ = ensure_env_file(path)
    before = path.read_bytes()
    second, added = ensure_env_file(path)
    assert added == []
    assert second == first
    assert path.read_bytes() == before


def test_existing_values_are_kept_and_only_missing_ones_added(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    path = tmp_path / "env"
    original = (
        "# my notes\n"
        f"PHONE_ENCRYPTION_KEY={key}\n"
        "export REDIS_URL='redis://127.0.0.1:7777/1'\n"
        "LOG_LEVEL=DEBUG"  # no final newline
    )
    path.write_text(original)

    values, added = ensure_env_file(path)

    text = path.read_text()
    assert text.startswith(original + "\n")
    assert values["PHONE_ENCRYPTION_KEY"] == key
    assert values["REDIS_URL"] == "redis://127.0.0.1:7777/1"
    assert values["LOG_LEVEL"] == "DEBUG"
    assert "PHONE_ENCRYPTION_KEY" not in added and "REDIS_URL" not in added
    assert text.count("PHONE_ENCRYPTION_KEY=") == 1
    assert "PHONE_HASH_KEY" in added and "DATABASE_URL" in added


def test_command_line_twice_gives_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "env"
    command = [sys.executable, "-m", "scripts.bootstrap_env", "--path", str(path)]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    content = path.read_text()
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert path.read_text() == content
    assert "PHONE_ENCRYPTION_KEY" in first.stdout
    assert "nothing changed" in second.stdout
    assert parse_env(content)["PHONE_ENCRYPTION_KEY"] not in first.stdout + second.stdout  # no secret printed


def test_parse_env_ignores_comments_and_strips_quotes() -> None:
    text = '# c\n\nA=1\nexport B="two words"\nC=x=y==\nnot a line\n D = spaced \n'
    assert parse_env(text) == {"A": "1", "B": "two words", "C": "x=y==", "D": "spaced"}


_ENV_READ = re.compile(
    r'(?:reader\.\w+|environ\.get|env\.get|getenv)\(\s*"([A-Z][A-Z0-9_]*)"|environ\[\s*"([A-Z][A-Z0-9_]*)"\]'
)
_SYSTEM_VARIABLES = {"PATH", "HOME", "USER", "TMPDIR", "PYTHONUNBUFFERED"}


def _variables_read(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        for groups in _ENV_READ.findall(path.read_text(encoding="utf-8")):
            found.update(name for name in groups if name)
    return found - _SYSTEM_VARIABLES


def _project_sources() -> list[Path]:
    skip = {"tests", "bench", "build"}
    return [
        path for path in ROOT.rglob("*.py")
        if not any(part.startswith(".") or part in skip or part.endswith(".egg-info")
                   for part in path.relative_to(ROOT).parts[:-1])
    ]


def test_env_example_documents_every_variable() -> None:
    example = (ROOT / ".env.example").read_text()
    active = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.M))
    commented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=\S*$", example, flags=re.M))  # a line to uncomment

    config_vars = {env_name(name) for name in Settings.model_fields}
    assert len(config_vars) > 25
    assert config_vars - active == set(), "config.py reads these; run `make env-example`"
    assert active - config_vars == set(), "stale in .env.example (config.py does not read them)"

    elsewhere = (_variables_read(_project_sources()) | set(PORT_VARS.values())) - config_vars
    assert elsewhere - commented == set(), "read by a process; add them to OTHER_VARIABLES in scripts/env_example.py"
    assert commented - elsewhere == set(), "stale in .env.example (nothing reads them)"


# --- environment and ports -------------------------------------------------------------------


def test_real_environment_wins_over_the_file() -> None:
    env, ports = process_environment({"LOG_LEVEL": "INFO", "TENANT_SLUG": "demo"}, {"LOG_LEVEL": "DEBUG"})
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["TENANT_SLUG"] == "demo"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert ports == Ports()


def test_port_variables_move_the_matching_urls() -> None:
    file_values = dict(FIXED_VALUES)
    env, ports = process_environment(file_values, {"ENCARGO_REDIS_PORT": "7001", "ENCARGO_WEB_PORT": "9000",
                                                   "WEB_BIND": "0.0.0.0:80"})
    assert ports == Ports(web=9000, redis=7001)
    assert env["REDIS_URL"] == "redis://127.0.0.1:7001/0"
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:9000"
    assert env["WEB_BIND"] == "127.0.0.1:9000"  # the web process listens where `make run` checks /healthz
    secrets = {"PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(), "PHONE_HASH_KEY": "k"}
    assert Settings.from_env({**env, **secrets}).web_bind == "127.0.0.1:9000"
    assert env["DATABASE_URL"] == FIXED_VALUES["DATABASE_URL"]  # no port variable: the file's value

    env, _ = process_environment(file_values, {"ENCARGO_REDIS_PORT": "7001", "REDIS_URL": "redis://elsewhere/2"})
    assert env["REDIS_URL"] == "redis://elsewhere/2"  # set in the real environment: it wins

    env, ports = process_environment({**file_values, "ENCARGO_POSTGRES_PORT": "6543"}, {})
    assert ports.postgres == 6543
    assert env["DATABASE_URL"] == "postgresql://encargo@127.0.0.1:6543/encargo"


def test_sandbox_core_listens_where_core_api_url_points(tmp_path: Path) -> None:
    env, _ = process_environment(dict(FIXED_VALUES), {"PATH": "/usr/bin"}, bindir=tmp_path)
    assert env["SANDBOX_CORE_PORT"] == "8100"
    assert env["CORE_API_URL"] == "http://127.0.0.1:8100"
    assert env["PATH"] == f"{tmp_path}:/usr/bin"  # the venv's console scripts come first

    env, _ = process_environment(dict(FIXED_VALUES), {"ENCARGO_CORE_PORT": "8200"})
    assert env["SANDBOX_CORE_PORT"] == "8200"
    assert env["CORE_API_URL"] == "http://127.0.0.1:8200"


def test_the_sandbox_core_plays_both_demo_companies_each_with_its_own_key_and_secret(tmp_path: Path) -> None:
    values, _ = ensure_env_file(tmp_path / "env")
    env, _ = process_environment(values, {})
    companies = parse_companies(env["SANDBOX_CORE_COMPANIES"], env["SANDBOX_CORE_EVENTS_URL"])
    assert [c.events_key_id for c in companies] == ["demo", values["DEMO2_TENANT_SLUG"]] == ["demo", "cuscatlan"]
    assert [c.api_key for c in companies] == [values["CORE_API_KEY"], values["DEMO2_CORE_API_KEY"]]
    assert [c.events_secret for c in companies] == [values["INTERNAL_EVENTS_SECRET"], values["DEMO2_EVENTS_SECRET"]]
    assert {c.events_url for c in companies} == {"http://127.0.0.1:8000/internal/events"}
    served = serve(companies)  # both data files load, and the keys tell the companies apart
    names = [company.state.block("company")["name"] for company in served]
    assert names == ["Transportes Express El Salvador", "Envíos Rápidos Cuscatlán"]

    mine = json.dumps([{"api_key": "only-mine"}])
    env, _ = process_environment(values, {"SANDBOX_CORE_COMPANIES": mine})
    assert env["SANDBOX_CORE_COMPANIES"] == mine  # set in the real environment: it wins


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_bad_port_variable_is_one_clear_error(value: str) -> None:
    with pytest.raises(StartupError, match=f"ENCARGO_CORE_PORT='{value}' is not a port number"):
        process_environment({}, {"ENCARGO_CORE_PORT": value})


def test_process_commands(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for script in ("encargo-web", "encargo-worker", "encargo-scheduler", "encargo-sandbox-core"):
        (bindir / script).touch()
    specs = {spec.name: spec for spec in process_specs(bindir)}
    assert list(specs) == ["sandbox-core", "web", "worker", "scheduler"]
    # The web process is `encargo-web`, as in the image and compose: gunicorn with web/gunicorn_conf.py.
    assert specs["web"].command == [str(bindir / "encargo-web")]
    assert (specs["web"].module, specs["web"].marker) == ("web.server", "gunicorn")  # it execs gunicorn
    assert specs["worker"].module == "worker.main"
    assert specs["scheduler"].module == "worker.scheduler"
    assert specs["sandbox-core"].module == "sandbox_core.server"

    # Console scripts not installed (an empty bin/): the module's function is called directly.
    fallback = {spec.name: spec for spec in process_specs(bindir=tmp_path)}
    assert fallback["worker"].command[:2] == [sys.executable, "-c"]
    assert "from worker.main import main" in fallback["worker"].command[2]
    assert "from web.server import main" in fallback["web"].command[2]
    assert fallback["web"].marker == "gunicorn"


def test_module_exists() -> None:
    assert module_exists("config")
    assert module_exists("scripts.run_all")
    assert module_exists("storage")
    assert not module_exists("storage.no_such_module")


# --- ports already taken ---------------------------------------------------------------------


def test_taken_port_names_the_process_and_the_variable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert not port_is_free(port)
        owner = port_owner(port)
        assert owner is not None and owner[0] == os.getpid()
        ports = Ports(web=port, core=_free_port(), redis=_free_port(), postgres=_free_port())
        with pytest.raises(StartupError) as info:
            check_ports_free(ports)
        message = str(info.value)
        assert f"port {port} (for web)" in message
        assert f"pid {os.getpid()}" in message
        assert "ENCARGO_WEB_PORT" in message

        with pytest.raises(StartupError, match="make stop"):
            check_ports_free(ports, {"web": {"pid": os.getpid(), "marker": "x"}})
    assert port_is_free(port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the supervisor --------------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_console_prefixes_every_line() -> None:
    out = io.StringIO()
    Console(out, color=False).line("web", "one\ntwo\n")
    assert out.getvalue() == "web          | one\nweb          | two\n"


def test_crashed_child_is_restarted_with_growing_delay_and_the_rest_keeps_running() -> None:
    out = io.StringIO()
    group = ProcessGroup(Console(out, color=False))
    env = dict(os.environ)
    group.start("sleeper", _python("import time; print('up', flush=True); time.sleep(60)"), env)
    group.start("crasher", _python("import sys; print('boom', flush=True); sys.exit(3)"), env)
    sleeper = group.procs["sleeper"].pid
    stop = StopFlag()
    restarts: list[tuple[str, int]] = []
    result: list[int] = []
    watcher = threading.Thread(target=lambda: result.append(supervise(
        group, stop, ready=lambda: True, on_ready=lambda: None, poll_s=0.02,
        on_restart=lambda name, pid: restarts.append((name, pid)), restart_delays=(0.1, 0.3, 0.6))))
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while len(restarts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.event.set()
        watcher.join(timeout=10)
        group.stop_all(timeout=10)
    assert result == [0]  # a crash does not stop everything; only the stop request does
    assert [name for name, _pid in restarts][:3] == ["crasher"] * 3
    assert group.procs["sleeper"].pid == sleeper  # never touched until the stop
    assert group.procs["sleeper"].returncode == -signal.SIGTERM
    text = out.getvalue()
    assert "crasher exited unexpectedly (exit code 3); restarting it in 0.1s" in text
    assert "crasher exited unexpectedly (exit code 3) (2 times in a row); restarting it in 0.3s" in text
    assert "crasher exited unexpectedly (exit code 3) (3 times in a row); restarting it in 0.6s" in text
    assert f"crasher restarted (pid {restarts[0][1]})" in text
    assert text.count("crasher      | boom") >= 3
    assert "sleeper      | up" in text
    assert "stopping everything" not in text


def test_child_ignoring_sigterm_is_killed_after_the_timeout() -> None:
    group = ProcessGroup(Console(io.StringIO(), color=False))
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(60)
    """
    group.start("stubborn", _python(code), dict(os.environ))
    time.sleep(0.5)
    group.stop_all(timeout=0.5)
    assert group.procs["stubborn"].returncode == -signal.SIGKILL


def test_never_ready_stops_with_failure() -> None:
    out = io.StringIO()
    group = ProcessGroup(Console(out, color=False))
    group.start("idle", _python("import time; time.sleep(60)"), dict(os.environ))
    try:
        code = supervise(group, StopFlag(), ready=lambda: False, on_ready=lambda: None,
                         ready_timeout=0.3, ready_what="http://x/healthz", poll_s=0.05)
    finally:
        group.stop_all(timeout=5)
    assert code == 1
    assert "http://x/healthz was not ready within 0s" in out.getvalue()


SUPERVISOR_SCRIPT = """
import os, sys
from scripts.run_children import Console, ProcessGroup, StopFlag, supervise
stop = StopFlag()
stop.install()
group = ProcessGroup(Console())
child = "import time; print('child up', flush=True); time.sleep(60)"
pid = group.start("child", [sys.executable, "-c", child], dict(os.environ))
print("CHILD", pid, flush=True)
code = supervise(group, stop, lambda: True, lambda: print("READY", flush=True))
group.stop_all(timeout=5)
sys.exit(code)
"""


def _start_supervisor() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    child = 0
    for line in proc.stdout:
        if line.startswith("CHILD"):
            child = int(line.split()[1])
        if "READY" in line:
            break
    assert child
    return proc, child


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_children_and_exits_zero(sig: signal.Signals) -> None:
    proc, child = _start_supervisor()
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"{sig.name}: stopping" in rest
    assert _gone(child)


def test_child_ends_when_the_supervisor_is_killed() -> None:
    proc, child = _start_supervisor()
    proc.kill()  # no chance to clean up: the child must still go (parent-death signal)
    proc.communicate(timeout=30)
    assert _gone(child)


def test_exec_loads_env_file_and_real_environment_wins(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from scripts import run_all, run_environment
        run_environment.RUN_DIR = Path({str(tmp_path / 'run')!r})
        run_environment.ENV_FILE = run_environment.RUN_DIR / "env"
        run_all.main(["--exec", "{sys.executable}", "-c",
                      "import os; print(os.environ['META_PHONE_NUMBER_ID'], os.environ['LOG_LEVEL'])",
                      "--from", "+50370000001"])
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "LOG_LEVEL": "ERROR"}, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["100000000000001", "ERROR"]
    assert (tmp_path / "run" / "env").exists()


# --- leftovers from an earlier run -----------------------------------------------------------


def test_stop_leftovers_ends_recorded_processes_only(tmp_path: Path) -> None:
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "leftover-marker"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not alive_and_matches(leftover.pid, "leftover-marker"):  # until it has exec'd
            assert time.monotonic() < deadline
            time.sleep(0.02)
        path = tmp_path / "pids.json"
        path.write_text(json.dumps({
            "worker": {"pid": leftover.pid, "marker": "leftover-marker"},
            "web": {"pid": os.getpid(), "marker": "not-this-process"},  # a reused pid: left alone
            "redis": {"pid": 2**22 + 12345, "marker": "redis-server"},  # long gone
        }))
        out = io.StringIO()
        run_all.stop_leftovers(Console(out, color=False), path)
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert not path.exists()
        assert "stopping worker" in out.getvalue()
        assert "web" not in out.getvalue()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_postgres_data_moves_out_of_a_tree_the_postgres_user_cannot_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "home" / ".run"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(run_services, "FALLBACK_PG_BASE", tmp_path / "varlib")
    monkeypatch.setattr(run_services.os, "geteuid", lambda: 0)
    monkeypatch.setattr(run_services, "_traversable", lambda path: False)

    out = io.StringIO()
    first = run_services.postgres_data_dir(run_dir, Console(out, color=False))
    assert first.parent == tmp_path / "varlib" and first.is_dir()
    assert (run_dir / "postgres").resolve() == first
    assert "PostgreSQL data is in" in out.getvalue()
    assert run_services.postgres_data_dir(run_dir) == first  # the next run finds it through the link

    monkeypatch.setattr(run_services, "_traversable", lambda path: True)
    other = tmp_path / "reachable" / ".run"
    other.mkdir(parents=True)
    assert run_services.postgres_data_dir(other) == other / "postgres"


def test_pid_record_round_trip(tmp_path: Path) -> None:
    record = PidRecord(tmp_path / "pids.json")
    record.add("redis", 123, "redis-server")
    record.add("web", 456, "gunicorn")
    assert PidRecord.load(tmp_path / "pids.json") == {
        "redis": {"pid": 123, "marker": "redis-server"}, "web": {"pid": 456, "marker": "gunicorn"},
    }
    record.clear()
    assert PidRecord.load(tmp_path / "pids.json") == {}


def test_bootstrap_module_needs_only_the_standard_library() -> None:
    source = Path(bootstrap_env.__file__).read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.M))
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}

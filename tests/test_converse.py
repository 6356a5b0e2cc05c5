"""scripts/converse.py: the scenario runner, run as a customer of the project would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "converse.py"
SCENARIOS = ROOT / "tests" / "scenarios"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def converse(*args: str, env: dict[str, str] | None = None, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    """Run the script; without `env` it gets no DATABASE_URL/REDIS_URL and starts its own services."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**base, **(env or {})}, check=False)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def test_published_examples_pass_on_the_given_services(base_env: dict[str, str]) -> None:
    result = converse(str(SCENARIOS / "examples.yaml"), env=base_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result) == "4 passed, 0 failed"


def test_every_information_level_with_and_without_a_code_passes(base_env: dict[str, str]) -> None:
    """privacy.yaml: stranger, sender, recipient and username-only (`from_user`), each with a code and without."""
    result = converse(str(SCENARIOS / "privacy.yaml"), env=base_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result) == "10 passed, 0 failed"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_flow_passes_on_throwaway_services() -> None:
    """No DATABASE_URL/REDIS_URL: the runner starts its own Redis and PostgreSQL (37 conversations: ~100 s)."""
    result = converse(str(SCENARIOS / "flows.yaml"), timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    match = SUMMARY.match(last_line(result))
    assert match is not None and int(match.group(1)) >= 30 and match.group(2) == "0", result.stdout


# The themed files and how many conversations each holds (reported.yaml: the conversations reported as going
# wrong, and the misbehaviours found while writing the set).
THEMED = {"tracking.yaml": 18, "business.yaml": 24, "handoff.yaml": 17, "context.yaml": 18, "reported.yaml": 38}
FIGURES = ROOT / "scripts" / "conversation_figures.py"


def test_the_scenario_set_holds_at_least_120_conversations() -> None:
    from scripts.converse_scenarios import load_scenarios

    counts = {path.name: len(load_scenarios(path)) for path in SCENARIOS.glob("*.yaml")}
    assert {name: counts.get(name) for name in THEMED} == THEMED
    assert sum(counts.values()) >= 120, counts


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(THEMED))
def test_every_themed_scenario_file_passes(base_env: dict[str, str], name: str) -> None:
    """tracking, business, handoff, context and reported: customers as they write, through the whole pipeline."""
    result = converse(str(SCENARIOS / name), env=base_env, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert last_line(result) == f"{THEMED[name]} passed, 0 failed"


def test_the_figures_count_resolution_and_not_understood(base_env: dict[str, str], tmp_path: Path) -> None:
    """Four conversations: resolved; "no entendí" once; a person asked for; a person after "no entendí" twice."""
    scenario = tmp_path / "figures.yaml"
    scenario.write_text(
        "".join(f'- name: "{name}"\n  from: "+5037777500{n}"\n  at: "2026-01-06T10:00:00-06:00"\n  turns:\n'
                + "".join(f'    - {{user: "{text}", after: "20s"}}\n' for text in texts)
                for n, (name, texts) in enumerate([
                    ("resuelta", ["Hola"]),
                    ("no entendio una vez", ["cuéntame un chiste de pericos", "gracias"]),
                    ("pidio una persona", ["quiero hablar con una persona"]),
                    ("acepto un asesor", ["cuéntame un chiste de pericos", "el perico verde canta en la mañana",
                                          "si"]),
                ], 1)), encoding="utf-8")
    result = subprocess.run([sys.executable, str(FIGURES), str(scenario)], capture_output=True, text=True,
                            timeout=110, cwd=ROOT, env={**os.environ, **base_env}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "Conversations: 4 in 1 file; expectations passed in 4 (figures.yaml 4/4)",
        "Resolved without a person: 2 of 4 (50.0%) [design target > 75%]",
        "  sent to a person by request or by rule: 1",
        "  resolved of the 3 the bot may resolve: 2 (66.7%)",
        "'No entendi' at least once: 2 of 4 (50.0%) [design target < 10%]",
        "  'no entendi' per customer message: 3 of 7 (42.9%)",
    ], result.stdout
    assert "  * figures.yaml · pidio una persona (customer_request)" in lines
    assert "    figures.yaml · acepto un asesor (not_understood)" in lines
    assert lines[lines.index("Got 'no entendi' at least once:") + 1:] == [
        "    figures.yaml · no entendio una vez (1)", "    figures.yaml · acepto un asesor (2)"]

    data = json.loads(subprocess.run([sys.executable, str(FIGURES), str(scenario), "--json"], capture_output=True,
                                     text=True, timeout=110, cwd=ROOT, env={**os.environ, **base_env},
                                     check=False).stdout)
    assert (data["resolved"], data["requested_or_ruled"], data["not_understood_conversations"]) == (2, 1, 2)
    assert [e["name"] for e in data["escalated"]] == ["pidio una persona", "acepto un asesor"]


def test_a_failing_expectation_is_reported_and_exits_non_zero(base_env: dict[str, str], tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        '- name: "espera lo imposible"\n'
        '  from: "+50370000001"\n'
        '  at: "2026-01-06T10:30:00-06:00"\n'
        "  turns:\n"
        '    - user: "Hola"\n'
        "      expect: {intent: pricing, reply_contains: [\"jirafa\"], escalated: true}\n"
        '    - user: "SV20260106012345"\n'
        '      after: "40s"\n'
        '      expect: {reply_contains: ["Santa Ana"]}\n', encoding="utf-8")
    result = converse(str(scenario), env=base_env)
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL ")]
    assert len(failures) == 3
    assert "espera lo imposible · turn 1 ('Hola'): intent is 'greeting', expected pricing" in failures[0]
    assert "reply_contains 'jirafa' missing" in failures[1]
    assert "escalated is False, expected True" in failures[2]
    assert last_line(result) == "0 passed, 1 failed"

    report = converse(str(scenario), "--json", env=base_env)
    assert report.returncode == 1
    data = json.loads(report.stdout)
    assert (data["passed"], data["failed"]) == (0, 1)
    conversation = data["conversations"][0]
    assert [f["turn"] for f in conversation["failures"]] == [1, 1, 1]
    assert conversation["turns"][1]["intent"] == "track_package" and not conversation["turns"][1]["failures"]


def test_a_malformed_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text('- name: x\n  from: "+50370000001"\n  at: "ayer"\n  turns: []\n', encoding="utf-8")
    result = converse(str(scenario))
    assert result.returncode == 2
    assert "is not an ISO date-time" in result.stderr
    scenario.write_text('- name: x\n  from: "+50370000001"\n  at: "2026-01-06T10:00:00-06:00"\n'
                        '  turns:\n    - user: "Hola"\n      expect: {mood: happy}\n', encoding="utf-8")
    result = converse(str(scenario))
    assert result.returncode == 2 and "unknown expectation mood" in result.stderr
    for who, reason in (('from_user: "arroba"', "is not a user id"),
                        ('from: "+50370000001"\n  from_user: "US.13491208655302741918"', "exactly one of from")):
        scenario.write_text(f'- name: x\n  {who}\n  at: "2026-01-06T10:00:00-06:00"\n'
                            '  turns:\n    - user: "Hola"\n', encoding="utf-8")
        result = converse(str(scenario))
        assert result.returncode == 2 and reason in result.stderr, result.stderr

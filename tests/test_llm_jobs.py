"""The model's work outside a customer's message: the agent's summary and the Anexo B escalation analysis.

The real `openai` SDK talks to the loopback fake (tests/fakes/openai_api.py);
escalations come from real conversations through the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from llm import analysis, summary
from tests.fakes.openai_api import DEFAULT_KEY, FakeOpenAI, Reply, json_reply
from tests.harness import rows
from tests.test_engine_flows import ANA, Chat, make_chat

TRANSCRIPT = [("cliente", "mi paquete SV20260106012345 llegó dañado, quiero poner un reclamo"),
              ("bot", "Lamento mucho lo que pasó. Tu número de caso es ENC-260106-AB12.")]
FACTS: dict[str, Any] = {"case_number": "ENC-260106-AB12", "reason": "complaint", "priority": "high"}


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str, openai_fake: FakeOpenAI) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "LLM_PROVIDER": "openai",
                              "LLM_API_KEY": DEFAULT_KEY, "LLM_BASE_URL": openai_fake.base_url,
                              "LLM_MAX_RETRIES": "0"})


@pytest.fixture
def chat(settings: Settings, db_pool: ConnectionPool) -> Iterator[Chat]:
    yield from make_chat(settings, db_pool)


# -- summary for the agent -----------------------------------------------------------------------------------


def test_summary_from_the_conversation(settings: Settings, redis_conn: redis.Redis, openai_fake: FakeOpenAI) -> None:
    openai_fake.script("text", Reply(content="El cliente reporta el paquete SV20260106012345 dañado y quiere "
                                             "poner un reclamo (caso ENC-260106-AB12). Está molesto."))
    text = summary.summarize(settings, redis_conn, TRANSCRIPT, FACTS)
    assert text is not None and "SV20260106012345" in text and "ENC-260106-AB12" in text
    sent = openai_fake.requests[0]["messages"]
    assert "llegó dañado" in sent[-1]["content"] and "ENC-260106-AB12" in sent[-1]["content"]


@pytest.mark.parametrize("reply", [
    Reply(content="El cliente (tel. 7777-8888) reclama un paquete dañado."),  # a number not in the chat
    Reply(content=""),
    Reply(status=500),
])
def test_a_bad_summary_is_none_so_the_console_uses_its_own(settings: Settings, redis_conn: redis.Redis,
                                                           openai_fake: FakeOpenAI, reply: Reply) -> None:
    openai_fake.script("text", reply)
    assert summary.summarize(settings, redis_conn, TRANSCRIPT, FACTS) is None


def test_no_provider_no_summary(base_env: dict[str, str], redis_conn: redis.Redis, db_pool: ConnectionPool,
                                openai_fake: FakeOpenAI) -> None:
    plain = Settings.from_env(base_env)
    assert summary.summarize(plain, redis_conn, TRANSCRIPT, FACTS) is None
    # no company has a model of its own either: the console's summarizer answers None (it summarises by rules)
    summarizer = summary.summarizer_for(plain, redis_conn, db_pool)
    assert summarizer(TRANSCRIPT, FACTS) is None
    assert openai_fake.requests == []


def test_the_summarizer_records_its_cost_against_the_case(chat: Chat, settings: Settings, redis_conn: redis.Redis,
                                                          db_pool: ConnectionPool, openai_fake: FakeOpenAI) -> None:
    chat.send(ANA, "mi paquete llegó dañado, quiero poner un reclamo")
    case = rows(db_pool, "SELECT case_number, conversation_id, tenant_id FROM escalations")[0]
    summarizer = summary.summarizer_for(settings, redis_conn, db_pool)
    assert summarizer is not None
    openai_fake.script("text", Reply(content="La clienta reporta un paquete dañado y quiere reclamar.",
                                     tokens_in=500, tokens_out=30))
    text = summarizer([("cliente", "mi paquete llegó dañado, quiero poner un reclamo")],
                      {"case_number": case["case_number"]})
    assert text == "La clienta reporta un paquete dañado y quiere reclamar."
    cost = rows(db_pool, "SELECT purpose, conversation_id, tenant_id, tokens_in FROM llm_calls")
    assert cost == [{"purpose": "summary", "conversation_id": case["conversation_id"],
                     "tenant_id": case["tenant_id"], "tokens_in": 500}]


# -- escalation analysis (Anexo B) ---------------------------------------------------------------------------


ANALYSIS = {"conversation_id": "conv_x", "escalation_reason": "palabra_urgente", "category": "reclamo",
            "was_necessary": True, "suggestion": "Pedir fotos del daño antes de pasar al asesor.",
            "priority": "media", "example_query": "mi paquete llegó dañado, llámenme al 7000 0003"}


def test_escalations_are_analysed_and_stored(chat: Chat, settings: Settings, redis_conn: redis.Redis,
                                             db_pool: ConnectionPool, openai_fake: FakeOpenAI) -> None:
    chat.send(ANA, "mi paquete llegó dañado, quiero poner un reclamo")
    assert openai_fake.requests == []  # the rules handled the complaint
    openai_fake.script("json", json_reply(ANALYSIS))
    assert analysis.analyze_pending(settings, db_pool, redis_conn, min_age_s=0) == 1
    stored = rows(db_pool, "SELECT conversation_id, prompt_version, analysis FROM escalation_analyses")
    assert len(stored) == 1 and stored[0]["prompt_version"] == "analysis.v1"
    result = stored[0]["analysis"]
    assert result["conversation_id"] == f"conv_{stored[0]['conversation_id']}"
    assert (result["category"], result["was_necessary"], result["priority"]) == ("reclamo", True, "media")
    assert "7000" not in result["example_query"] and "[teléfono]" in result["example_query"]
    request = openai_fake.requests[0]
    assert request["response_format"]["json_schema"]["schema"]["required"][1] == "escalation_reason"
    assert "llegó dañado" in request["messages"][-1]["content"]
    assert [r["purpose"] for r in rows(db_pool, "SELECT purpose FROM llm_calls")] == ["analysis"]
    assert analysis.analyze_pending(settings, db_pool, redis_conn, min_age_s=0) == 0  # done once
    assert len(openai_fake.requests) == 1


def test_a_failing_analysis_is_retried_a_few_times_then_left(chat: Chat, settings: Settings, redis_conn: redis.Redis,
                                                             db_pool: ConnectionPool, openai_fake: FakeOpenAI) -> None:
    chat.send(ANA, "mi paquete llegó dañado, quiero poner un reclamo")
    openai_fake.script("json", *[json_reply({"category": "nada"}) for _ in range(analysis.MAX_ATTEMPTS)])
    for _ in range(analysis.MAX_ATTEMPTS + 1):
        assert analysis.analyze_pending(settings, db_pool, redis_conn, min_age_s=0) == 0
    assert len(openai_fake.requests) == analysis.MAX_ATTEMPTS
    assert rows(db_pool, "SELECT count(*) AS n FROM escalation_analyses")[0]["n"] == 0
    assert {r["outcome"] for r in rows(db_pool, "SELECT outcome FROM llm_calls")} == {"bad_output"}


def test_recent_escalations_wait(chat: Chat, settings: Settings, redis_conn: redis.Redis, db_pool: ConnectionPool,
                                 openai_fake: FakeOpenAI) -> None:
    chat.send(ANA, "mi paquete llegó dañado, quiero poner un reclamo")
    assert analysis.analyze_pending(settings, db_pool, redis_conn) == 0  # not yet MIN_AGE_S old
    assert openai_fake.requests == []

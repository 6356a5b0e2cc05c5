"""Voice notes are transcribed and answered from the transcript (issue 17), through the real pipeline.

A customer's voice note is a signed Meta webhook (fixtures/meta_audio_voice.json's shape) posted to the
real app; RQ burst workers store it, download the file from the loopback Graph API fake into the media
store, transcribe it with the loopback fake of OpenAI's /v1/audio/transcriptions, and the transcript comes
back into the customer's inbox as their message, answered like typed text by the sandbox core's data.
What a user would see: the replies sent (their text and buttons), the transcript and its confidence on the
media row (the console shows them), and what the transcription API received.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from channels.events import MessageKind
from config import Settings
from llm import transcription
from llm.transcription import OPENAI_BASE_URL, TranscriptionError, read_transcript
from runtime.model_access import ModelAccess
from runtime.resources import build_runtime
from storage import media, metric_counts, usage
from storage.media import Media
from tests.conftest import load_fixture
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.media_files import twilio_media_url
from tests.fakes.transcription_api import DEFAULT_KEY, FakeTranscriptionAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_meta, post_twilio, rows, run_jobs
from web.app import create_app
from worker import media_followup, reentry

OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead" + b"\x01" * 400
CODE = "SV20260106012345"  # in transit (sandbox_core/data/core_demo.json)
ASKED = f"¿Ya llegó mi paquete {CODE}?"
CUSTOMER = "50370000009"


@pytest.fixture
def transcriber_api() -> Iterator[FakeTranscriptionAPI]:
    with FakeTranscriptionAPI() as fake:
        yield fake


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str, transcriber_api: FakeTranscriptionAPI) -> Settings:
    """The deployment's OpenAI-compatible server transcribes (LLM_PROVIDER=openai, LLM_BASE_URL, LLM_API_KEY)."""
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "LLM_PROVIDER": "openai",
                              "LLM_API_KEY": DEFAULT_KEY, "LLM_BASE_URL": transcriber_api.base_url,
                              "TRANSCRIPTION_MODEL": "whisper-1"})


@pytest.fixture
def meta(settings: Settings, graph: FakeGraphAPI) -> Settings:
    return settings.with_overrides(whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN,
                                   meta_graph_base_url=graph.url, simulator_enabled=False)


@pytest.fixture
def client(meta: Settings) -> Iterator[FlaskClient]:
    app = create_app(meta)
    with app.test_client() as test_client:
        yield test_client
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def send_voice_note(client: FlaskClient, graph: FakeGraphAPI, *, gone: bool = False, failures: int = 0) -> str:
    """The customer records a voice note: Meta's webhook, and the file on the Graph fake. Returns its wamid."""
    media_id = str(uuid.uuid4().int)[:16]
    graph.media.add(media_id, OGG, "audio/ogg; codecs=opus", gone=gone, failures=failures)
    payload = copy.deepcopy(load_fixture("meta_audio_voice.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = "106540352242922"
    value["contacts"][0]["wa_id"] = CUSTOMER
    message = value["messages"][0]
    message.update({"from": CUSTOMER, "id": f"wamid.VOICE{uuid.uuid4().hex}", "timestamp": "1767715200"})
    message["audio"]["id"] = media_id
    assert post_meta(client, payload).status_code == 200
    return str(message["id"])


def time_passes(settings: Settings, redis_conn: redis.Redis) -> bool:
    """The back-off's wait is over: jobs queued for later run now (RQ's scheduler would queue them when due).
    Returns whether there was any."""
    queue = Queue(settings.queue_name, connection=redis_conn)
    registry = ScheduledJobRegistry(queue=queue)
    due = registry.get_job_ids()
    for job_id in due:
        registry.remove(job_id)
        queue.enqueue_job(Job.fetch(job_id, connection=redis_conn))
    run_jobs(settings)
    return bool(due)


def replies(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT body, payload FROM messages WHERE direction = 'out' ORDER BY id")


def texts(pool: ConnectionPool) -> list[str]:
    return [str(r["body"]) for r in replies(pool)]


def voice_row(pool: ConnectionPool) -> dict[str, Any]:
    [row] = rows(pool, "SELECT * FROM media WHERE media_type = 'audio'")
    return row


def test_a_voice_note_is_answered_from_its_transcript(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                      transcriber_api: FakeTranscriptionAPI,
                                                      db_pool: ConnectionPool) -> None:
    transcriber_api.say(ASKED, probability=0.87)
    wamid = send_voice_note(client, graph)
    run_jobs(meta)

    [answer] = texts(db_pool)  # one turn: the voice note itself waited for its transcript
    assert CODE in answer and "tránsito" in answer.lower()
    assert any(CODE in m.get("text", {}).get("body", "") or CODE in str(m.get("interactive", ""))
               for m in graph.messages_to(f"+{CUSTOMER}"))
    row = voice_row(db_pool)
    assert (row["status"], row["transcript"], row["transcript_status"]) == ("stored", ASKED, "done")
    assert row["transcript_confidence"] == pytest.approx(0.87, abs=0.001)
    [said] = rows(db_pool, "SELECT kind, body, payload FROM messages WHERE provider_message_id = %s",
                  (f"{wamid}:transcript",))
    assert (said["kind"], said["body"], said["payload"]["context_message_id"]) == ("transcript", ASKED, wamid)
    [request] = transcriber_api.requests
    assert (request["model"], request["language"], request["response_format"]) == ("whisper-1", "es", "verbose_json")
    assert (request["filename"], request["content_type"], request["audio"]) == ("voice.ogg", "audio/ogg", OGG)


def test_a_transcript_is_not_counted_as_a_second_customer_message(
        client: FlaskClient, meta: Settings, graph: FakeGraphAPI, transcriber_api: FakeTranscriptionAPI,
        db_pool: ConnectionPool) -> None:
    transcriber_api.say(ASKED)
    send_voice_note(client, graph)
    run_jobs(meta)
    tenant = int(voice_row(db_pool)["tenant_id"])
    now = datetime.now(UTC)
    with db_pool.connection() as conn:
        assert usage.month_usage(conn, tenant, usage.current_month(conn, tenant), {}).customer_messages == 1
        hours = metric_counts.count_hours(conn, [tenant], now - timedelta(hours=1), now + timedelta(hours=1),
                                          sla=metric_counts.Sla(), categories=lambda _: {})
    assert sum(t.customer_messages for t in hours.values()) == 1
    assert len(rows(db_pool, "SELECT 1 FROM messages WHERE direction = 'in'")) == 2  # the audio and its transcript


def test_the_transcript_is_answered_once_when_its_jobs_run_again(
        client: FlaskClient, meta: Settings, graph: FakeGraphAPI, transcriber_api: FakeTranscriptionAPI,
        db_pool: ConnectionPool) -> None:
    transcriber_api.say(ASKED)
    send_voice_note(client, graph)
    run_jobs(meta)
    assert len(texts(db_pool)) == 1
    row = voice_row(db_pool)
    rt = build_runtime(meta, pool_size=1)
    try:
        media_followup.queue_transcription(rt, media_of(db_pool, row["id"]), "again", attempt=0)
        assert reentry.reenter(rt, media_of(db_pool, row["id"]), kind=MessageKind.TRANSCRIPT,
                               suffix="transcript", text=ASKED, correlation_id="again") is None
    finally:
        rt.close()
    run_jobs(meta)
    assert len(texts(db_pool)) == 1
    assert transcriber_api.count() == 1  # not transcribed (nor paid for) twice


def test_a_transcriber_outage_is_retried_and_then_answered(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                          transcriber_api: FakeTranscriptionAPI,
                                                          db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    transcriber_api.fail(503, n=2)
    transcriber_api.say(ASKED)
    send_voice_note(client, graph)
    run_jobs(meta)
    assert texts(db_pool) == []  # nothing yet: a retry is due
    assert voice_row(db_pool)["transcript_status"] == "pending"
    while time_passes(meta, redis_conn):
        pass
    [answer] = texts(db_pool)
    assert CODE in answer
    assert transcriber_api.count() == 3


def test_a_transcriber_outage_that_lasts_gets_the_honest_reply(
        client: FlaskClient, meta: Settings, graph: FakeGraphAPI, transcriber_api: FakeTranscriptionAPI,
        db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    transcriber_api.fail(503, n=20)
    send_voice_note(client, graph)
    run_jobs(meta)
    while time_passes(meta, redis_conn):
        pass
    assert transcriber_api.count() == len(media_followup.RETRY_DELAYS_S) + 1
    [reply] = replies(db_pool)
    assert reply["body"].startswith("No pude escuchar tu audio")
    assert [b["title"] for b in reply["payload"]["buttons"]] == ["Hablar con persona"]
    row = voice_row(db_pool)
    assert (row["transcript"], row["transcript_status"]) == (None, "failed")


def test_a_transcription_whose_job_was_lost_is_queued_again_by_the_scheduler(
        client: FlaskClient, meta: Settings, graph: FakeGraphAPI, transcriber_api: FakeTranscriptionAPI,
        db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    transcriber_api.fail(503)
    transcriber_api.say(ASKED)
    send_voice_note(client, graph)
    run_jobs(meta)
    later = ScheduledJobRegistry(queue=Queue(meta.queue_name, connection=redis_conn))
    later.remove(f"transcribe{voice_row(db_pool)['id']:015d}-1")  # Redis lost the retry
    assert later.get_job_ids() == []
    rt = build_runtime(meta, pool_size=1)
    try:
        assert media_followup.recover_transcriptions(rt) == 0  # not before every retry could have run
        with db_pool.connection() as conn:
            conn.execute("UPDATE media SET stored_at = now() - interval '1 hour'")
        assert media_followup.recover_transcriptions(rt) == 1
    finally:
        rt.close()
    run_jobs(meta)
    [answer] = texts(db_pool)
    assert CODE in answer and voice_row(db_pool)["transcript_status"] == "done"


def test_audio_the_transcriber_refuses_is_not_retried(client: FlaskClient, meta: Settings, graph: FakeGraphAPI,
                                                      transcriber_api: FakeTranscriptionAPI,
                                                      db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    transcriber_api.fail(400)
    send_voice_note(client, graph)
    run_jobs(meta)
    assert not time_passes(meta, redis_conn)
    assert [t[:26] for t in texts(db_pool)] == ["No pude escuchar tu audio "]
    assert transcriber_api.count() == 1


def test_a_voice_note_whose_file_is_gone_gets_the_honest_reply(
        client: FlaskClient, meta: Settings, graph: FakeGraphAPI, transcriber_api: FakeTranscriptionAPI,
        db_pool: ConnectionPool) -> None:
    send_voice_note(client, graph, gone=True)
    run_jobs(meta)
    [reply] = replies(db_pool)
    assert reply["body"].startswith("No pude escuchar tu audio")
    assert voice_row(db_pool)["status"] == "gone"
    assert transcriber_api.count() == 0


def test_without_a_transcriber_the_honest_reply_comes_at_once(
        base_env: dict[str, str], core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    plain = Settings.from_env({**base_env, "CORE_API_URL": core_url}).with_overrides(
        whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN, meta_graph_base_url=graph.url,
        simulator_enabled=False)
    assert not transcription.configured(plain)
    app = create_app(plain)
    try:
        with app.test_client() as plain_client:
            wamid = send_voice_note(plain_client, graph)
        run_jobs(plain)
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
    [reply] = replies(db_pool)
    assert "no puedo escuchar audios" in reply["body"]
    assert [b["title"] for b in reply["payload"]["buttons"]] == ["Hablar con persona"]
    assert voice_row(db_pool)["transcript_status"] == "unavailable"
    assert not rows(db_pool, "SELECT 1 FROM messages WHERE provider_message_id = %s", (f"{wamid}:transcript",))


def media_of(pool: ConnectionPool, media_id: int) -> Media:
    [owner] = rows(pool, "SELECT tenant_id FROM media WHERE id = %s", (media_id,))
    with pool.connection() as conn:
        found = media.get(conn, media_id, int(owner["tenant_id"]))
    assert found is not None
    return found


# --- the transcriber on its own ------------------------------------------------------------------------------


def test_confidence_is_the_duration_weighted_probability_of_the_segments() -> None:
    body = {"text": " hola  mundo ", "segments": [
        {"start": 0.0, "end": 3.0, "avg_logprob": -0.1053605},  # 0.9
        {"start": 3.0, "end": 4.0, "avg_logprob": -0.6931472}]}  # 0.5
    heard = read_transcript(body)
    assert heard.text == "hola mundo"
    assert heard.confidence == pytest.approx((3 * 0.9 + 1 * 0.5) / 4, abs=0.001)


def test_confidence_from_token_logprobs_or_none() -> None:
    assert read_transcript({"text": "sí", "logprobs": [{"token": "sí", "logprob": -0.2231436}]}).confidence \
        == pytest.approx(0.8, abs=0.001)
    assert read_transcript({"text": "sí"}).confidence is None


@pytest.mark.parametrize("body", [{"text": "   "}, {"no": "text"}, []])
def test_nothing_said_or_an_unreadable_answer_is_a_permanent_failure(body: Any) -> None:
    with pytest.raises(TranscriptionError) as failure:
        read_transcript(body)
    assert not failure.value.transient


def test_the_gpt_4o_models_are_asked_for_token_logprobs(transcriber_api: FakeTranscriptionAPI) -> None:
    transcriber_api.say("dónde queda la agencia", probability=0.6)
    heard = transcription.OpenAITranscriber(base_url=transcriber_api.base_url, api_key=DEFAULT_KEY,
                                            model="gpt-4o-mini-transcribe").transcribe(OGG, mime="audio/ogg")
    assert heard.confidence == pytest.approx(0.6, abs=0.001)
    [request] = transcriber_api.requests
    assert (request["response_format"], request["include[]"]) == ("json", "logprobs")


def test_a_wrong_key_is_a_permanent_failure(transcriber_api: FakeTranscriptionAPI) -> None:
    with pytest.raises(TranscriptionError) as failure:
        transcription.OpenAITranscriber(base_url=transcriber_api.base_url, api_key="sk-wrong",
                                        model="whisper-1").transcribe(OGG, mime="audio/ogg")
    assert (failure.value.reason, failure.value.transient) == ("refused", False)


def test_a_twilio_voice_note_is_answered_from_its_transcript_on_twilio(
        settings: Settings, transcriber_api: FakeTranscriptionAPI, db_pool: ConnectionPool) -> None:
    with FakeTwilioAPI(auth_token="12345") as twilio:
        on_twilio = settings.with_overrides(
            whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
            twilio_whatsapp_number="whatsapp:+14155238886", twilio_api_base_url=twilio.url, simulator_enabled=False)
        url, sid = twilio_media_url("https://api.twilio.com", DEFAULT_ACCOUNT_SID)
        twilio.media.add(sid, OGG, "audio/ogg")
        form = {k: str(v) for k, v in load_fixture("twilio_inbound_media.json").items()}
        form.update(Body="", MediaUrl0=url, MediaContentType0="audio/ogg", From=f"whatsapp:+{CUSTOMER}")
        transcriber_api.say(ASKED)
        app = create_app(on_twilio)
        try:
            with app.test_client() as twilio_client:
                assert post_twilio(twilio_client, form).status_code == 200
            run_jobs(on_twilio)
        finally:
            app.extensions["db_pool"].close()
            app.extensions["redis"].close()
        [answer] = [m["Body"] for m in twilio.messages_to(f"+{CUSTOMER}")]
    assert CODE in answer
    assert rows(db_pool, "SELECT kind FROM messages WHERE provider_message_id = %s",
                (f"{form['MessageSid']}:transcript",)) == [{"kind": "transcript"}]


def _account(settings: Settings, access: ModelAccess | None) -> tuple[str, str] | None:
    chosen = transcription.transcriber(settings, access)
    if chosen is None:
        return None
    assert isinstance(chosen, transcription.OpenAITranscriber)
    return chosen.base_url, chosen.api_key


def test_which_account_transcribes(base_env: dict[str, str]) -> None:
    own = ModelAccess("openai", "gpt-4o-mini", "sk-tenant", "", True)
    ollama = ModelAccess("openai", "llama3", "", "http://127.0.0.1:11434/v1", True)
    openai_api = Settings.from_env({**base_env, "LLM_PROVIDER": "openai", "LLM_API_KEY": "sk-deploy"})
    assert openai_api.transcription_model == "whisper-1"  # OpenAI's own API: on by default
    assert _account(openai_api, None) == (OPENAI_BASE_URL, "sk-deploy")
    assert _account(openai_api, own) == (OPENAI_BASE_URL, "sk-tenant")  # the tenant pays for its own
    assert _account(openai_api, ollama) == (OPENAI_BASE_URL, "sk-deploy")
    self_hosted = Settings.from_env({**base_env, "LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert transcription.transcriber(self_hosted) is None  # a chat server may not transcribe: off unless named
    speaches = self_hosted.with_overrides(transcription_model="Systran/faster-whisper-small",
                                          transcription_base_url="http://127.0.0.1:8010/v1")
    assert _account(speaches, own) == ("http://127.0.0.1:8010/v1", "")
    assert transcription.transcriber(openai_api.with_overrides(transcription_model="none")) is None
    assert transcription.transcriber(Settings.from_env(base_env)) is None  # no model at all: off

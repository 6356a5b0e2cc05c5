"""What happens to a customer's file once its download ends (issue 17): voice notes are transcribed, photos
are read for a tracking code (worker/photo_followup.py).

`worker.media_job` calls `after_stored` when a file is in the media store and
`after_failed` when its download ended without it (failed, gone, rejected).

A voice note (any inbound audio) with a transcriber configured
(llm.transcription; the bot said nothing when it arrived, chatbot/media_replies.py):
1. `after_stored` marks its transcript `pending` and queues `transcribe_voice`
   (its own job: a transcription may take longer than a download's job);
2. the job reads the file from the media store, transcribes it, stores the text
   and its confidence on the media row (`done`), and the text re-enters the
   customer's inbox as a TRANSCRIPT message (worker.reentry): answered in order,
   like typed text;
3. a transient failure (timeout, 429, 5xx) is tried again after RETRY_DELAYS_S;
   a permanent one (a refused file, nothing said), running out of tries, or a
   download that never gave the file (`after_failed`) marks the transcript
   `failed` and re-enters a TRANSCRIPT with no text: the bot tells the customer it
   could not listen to the audio, asks them to write it and offers a person.
Either way exactly one TRANSCRIPT message re-enters per voice note (its id is
`<wamid>:transcript`), so nothing is answered twice. Without a transcriber the
transcript is `unavailable` and nothing re-enters (the bot already said it can't
listen to audios).

Failure policy: `after_stored` / `after_failed` log and never raise (the download
is done whatever happens here); the job raises only on database errors (RQ
retries it), every transcription failure is handled as above. Logs carry ids and
reasons, never the audio or its text.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq import Retry

from channels.events import MessageKind
from llm.transcription import TIMEOUT_S, Transcriber, TranscriptionError, transcriber
from observability import current_correlation_id
from runtime.enqueue import FAILED_TTL_S
from runtime.resources import Runtime
from storage import media
from storage.media import Media
from storage.media_files import MediaNotFound
from worker import photo_followup, reentry

log = logging.getLogger(__name__)

TRANSCRIBE_JOB = "worker.jobs.transcribe_voice"
# Seconds before the 2nd, 3rd... try after a transient failure; then the customer is told (about 8 minutes on).
RETRY_DELAYS_S = (10, 30, 120, 300)
TRANSCRIPT_SUFFIX = "transcript"
FINISHED = ("done", "failed", "unavailable")
CRASH_RETRY = Retry(max=2, interval=[10, 60])  # a job that died with its worker (or on a database error) runs again
# A transcription still pending this long after its file was stored lost its job (every retry's wait together is
# under 8 minutes); the scheduler looks for such every RECOVERY_INTERVAL_S (a scan of the media rows: rarely).
STUCK_AFTER_S = 900
RECOVERY_INTERVAL_S = 300


def is_voice(row: Media) -> bool:
    """A customer's audio: voice notes and forwarded audio files alike are listened to."""
    return row.direction == "in" and row.media_type == "audio"


def after_stored(rt: Runtime, row: Media) -> None:
    """A file is in the media store: a voice note's transcription is queued, a photo's tracking code read
    (worker/photo_followup.py). Errors are logged, never raised."""
    try:
        if is_voice(row):
            _start_transcription(rt, row)
        else:
            photo_followup.read_photo(rt, row)
    except Exception as exc:  # the download succeeded; what follows must not undo it
        log.error("follow-up of a stored file failed: %s", type(exc).__name__, extra={"media_id": row.id})


def after_failed(rt: Runtime, row: Media) -> None:
    """A file's download ended without it (failed, gone, rejected): a voice note is answered honestly now.

    Errors are logged, never raised."""
    try:
        if is_voice(row) and row.transcript_status not in FINISHED:
            if _transcriber_for(rt, row) is None:
                _set(rt, row.id, None, None, "unavailable")  # the bot already said it can't listen to audios
                return
            _give_up(rt, row, f"download_{row.status}", current_correlation_id())
    except Exception as exc:
        log.error("follow-up of a failed download failed: %s", type(exc).__name__, extra={"media_id": row.id})


def transcribe_voice(rt: Runtime, media_id: int, tenant_id: int, correlation_id: str, attempt: int = 0) -> str:
    """The job: transcribe one stored voice note and re-enter its text (see the module docstring).

    Returns what happened (for logs and tests). Raises on database errors (RQ retries the job)."""
    with rt.pool.connection() as conn:
        row = media.get(conn, media_id, tenant_id)
    if row is None or row.transcript_status == "unavailable":
        return "nothing to do"
    if row.transcript_status in FINISHED:  # a job that died after storing its outcome: re-entered once
        reentry.reenter(rt, row, kind=MessageKind.TRANSCRIPT, suffix=TRANSCRIPT_SUFFIX, text=row.transcript,
                        correlation_id=correlation_id)
        return "nothing to do"
    engine = _transcriber_for(rt, row)
    if engine is None:  # turned off since it was queued
        _give_up(rt, row, "no_transcriber", correlation_id)
        return "no transcriber"
    try:
        audio = rt.media_store.get(row.tenant_id, row.storage_key or "")
    except MediaNotFound:  # deleted since (retention): nothing to listen to any more
        _give_up(rt, row, "file_missing", correlation_id)
        return "failed: file_missing"
    except Exception as exc:  # the store is another system: its failures are worth another try
        return _retry_or_give_up(rt, row, correlation_id, attempt, TranscriptionError(
            "store_unavailable", transient=True, detail=type(exc).__name__))
    try:
        transcript = engine.transcribe(audio, mime=row.mime or row.declared_mime or "audio/ogg")
    except TranscriptionError as exc:
        if not exc.transient:
            log.warning("voice note not transcribed: %s", exc.reason, extra={"media_id": row.id})
            _give_up(rt, row, exc.reason, correlation_id)
            return f"failed: {exc.reason}"
        return _retry_or_give_up(rt, row, correlation_id, attempt, exc)
    _set(rt, row.id, transcript.text, transcript.confidence, "done")
    reentry.reenter(rt, row, kind=MessageKind.TRANSCRIPT, suffix=TRANSCRIPT_SUFFIX, text=transcript.text,
                    correlation_id=correlation_id)
    log.info("voice note transcribed", extra={"media_id": row.id, "confidence": transcript.confidence,
                                               "chars": len(transcript.text), "model": engine.model})
    return "transcribed"


def recover_transcriptions(rt: Runtime) -> int:
    """The scheduler's pass (every RECOVERY_INTERVAL_S): voice notes whose transcription job was lost (Redis lost
    it, or it failed past its retries) get one last try; returns how many. Errors are logged, never raised."""
    try:
        with rt.pool.connection() as conn:
            stuck = media.stuck_transcripts(conn, older_than_s=STUCK_AFTER_S)
        for media_id, tenant_id in stuck:
            rt.queue.enqueue_call(TRANSCRIBE_JOB, args=(media_id, tenant_id, "recovery", len(RETRY_DELAYS_S)),
                                  job_id=f"transcribe{media_id:015d}-recovered",
                                  timeout=max(rt.settings.job_timeout_s, int(TIMEOUT_S) + 15), result_ttl=0,
                                  failure_ttl=FAILED_TTL_S)
    except Exception as exc:  # the scheduler's other jobs go on; the next pass tries again
        log.warning("transcription recovery skipped: %s", type(exc).__name__)
        return 0
    if stuck:
        log.info("voice note transcriptions queued again", extra={"count": len(stuck)})
    return len(stuck)


def _start_transcription(rt: Runtime, row: Media) -> None:
    if row.transcript_status in FINISHED:
        return
    if _transcriber_for(rt, row) is None:
        _set(rt, row.id, None, None, "unavailable")
        return
    _set(rt, row.id, None, None, "pending")
    queue_transcription(rt, row, current_correlation_id(), attempt=0)


def queue_transcription(rt: Runtime, row: Media, correlation_id: str, *, attempt: int, delay_s: float = 0) -> None:
    """Queue `transcribe_voice` for `row`, now or after `delay_s`. Raises redis errors."""
    job_id = f"transcribe{row.id:015d}-{attempt}"
    timeout = max(rt.settings.job_timeout_s, int(TIMEOUT_S) + 15)
    args = (row.id, row.tenant_id, correlation_id, attempt)
    if delay_s > 0:
        rt.queue.enqueue_in(timedelta(seconds=delay_s), TRANSCRIBE_JOB, *args, job_id=job_id, job_timeout=timeout,
                            result_ttl=0, failure_ttl=FAILED_TTL_S, retry=CRASH_RETRY)
    else:
        rt.queue.enqueue_call(TRANSCRIBE_JOB, args=args, job_id=job_id, timeout=timeout, result_ttl=0,
                              failure_ttl=FAILED_TTL_S, retry=CRASH_RETRY)


def _retry_or_give_up(rt: Runtime, row: Media, correlation_id: str, attempt: int, error: TranscriptionError) -> str:
    if attempt < len(RETRY_DELAYS_S):
        delay = RETRY_DELAYS_S[attempt]
        log.warning("voice note transcription failed, tried again in %ss: %s", delay, error.reason,
                    extra={"media_id": row.id, "attempt": attempt + 1})
        try:
            queue_transcription(rt, row, correlation_id, attempt=attempt + 1, delay_s=delay)
            return f"retry: {error.reason}"
        except redis.RedisError as exc:
            log.error("transcription retry not queued: %s", type(exc).__name__, extra={"media_id": row.id})
    log.warning("voice note not transcribed after %s tries: %s", attempt + 1, error.reason, extra={"media_id": row.id})
    _give_up(rt, row, error.reason, correlation_id)
    return f"failed: {error.reason}"


def _give_up(rt: Runtime, row: Media, reason: str, correlation_id: str) -> None:
    """The transcript is `failed`; an empty TRANSCRIPT re-enters so the bot tells the customer (once)."""
    _set(rt, row.id, None, None, "failed")
    reentry.reenter(rt, row, kind=MessageKind.TRANSCRIPT, suffix=TRANSCRIPT_SUFFIX, text=None,
                    correlation_id=correlation_id)
    log.info("voice note answered without a transcript", extra={"media_id": row.id, "reason": reason})


def _transcriber_for(rt: Runtime, row: Media) -> Transcriber | None:
    """The tenant's transcriber: its own OpenAI account when it has one, else the deployment's (or None: off)."""
    return transcriber(rt.settings, rt.model_access.get(row.tenant_id))


def _set(rt: Runtime, media_id: int, text: str | None, confidence: float | None, status: str) -> None:
    with rt.pool.connection() as conn:
        media.set_transcript(conn, media_id, text, confidence, status)

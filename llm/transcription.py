"""Voice notes to text: OpenAI's transcription API, or any server speaking it (issue 17).

One wire format, `POST {base}/audio/transcriptions` (multipart: `file`, `model`,
`language=es`, `response_format`), served by OpenAI (`whisper-1`,
`gpt-4o-transcribe`, `gpt-4o-mini-transcribe`) and by self-hosted servers such
as faster-whisper-server / speaches. Whisper models answer `verbose_json`
(segments with `avg_logprob`); the gpt-4o models answer `json` with token
`logprobs` when asked (`include[]=logprobs`). The confidence is the
probability those give: the mean of exp(avg_logprob) over the segments,
weighted by their duration, or the mean of exp(logprob) over the tokens;
None when the server gives neither.

Which account (`transcriber`):
- `TRANSCRIPTION_MODEL` names the model. Its default (config.py) is `whisper-1`
  when the deployment's model is OpenAI's own API (LLM_PROVIDER=openai without
  LLM_BASE_URL), else empty; `none` or empty turns transcription off.
- `TRANSCRIPTION_BASE_URL` (a self-hosted server) is called with the deployment's
  LLM_API_KEY when LLM_PROVIDER=openai, else with no key; tenants' accounts are
  not used for it (the server is the deployment's).
- Without it: a tenant with its own OpenAI account (`runtime.model_access`, no base
  URL of its own) pays for its transcriptions with its key; every other tenant uses
  the deployment's LLM_API_KEY against LLM_BASE_URL or OpenAI's API.

Failure policy: `transcribe` raises `TranscriptionError` for every failure (never an
httpx error); `transient` says whether trying again later can help (timeouts,
connection errors, 408/409/429/5xx) or not (refused audio or key, unreadable answer,
nothing said). Logs carry statuses and sizes, never the audio or the transcript.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from config import Settings
from runtime.model_access import ModelAccess

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
OFF = ("", "none")
LANGUAGE = "es"
TIMEOUT_S = 45.0  # one request; a 16 MB voice note (WhatsApp's limit) uploads and transcribes well within it
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# File name extensions by MIME type: OpenAI reads the format from the name (flac mp3 mp4 mpeg mpga m4a ogg wav webm).
EXTENSIONS = {"audio/ogg": "ogg", "audio/opus": "ogg", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a",
              "audio/m4a": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac", "audio/amr": "amr", "audio/wav": "wav",
              "audio/x-wav": "wav", "audio/webm": "webm", "audio/flac": "flac", "video/mp4": "mp4"}


class TranscriptionError(Exception):
    """A transcription failed. `reason` is a short machine word (stored as media.last_error-like text)."""

    def __init__(self, reason: str, *, transient: bool, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class Transcript:
    """What was said, and how sure the model was (0..1, None when the server does not say)."""

    text: str
    confidence: float | None
    language: str | None = None
    duration_s: float | None = None


class Transcriber(Protocol):
    model: str

    def transcribe(self, audio: bytes, *, mime: str) -> Transcript:
        """The text of one recording. Raises TranscriptionError."""
        ...


def configured(settings: Settings) -> bool:
    """Whether voice notes are transcribed at all in this deployment (the bot then waits for the transcript)."""
    return settings.transcription_model.strip().lower() not in OFF


def transcriber(settings: Settings, access: ModelAccess | None = None) -> Transcriber | None:
    """The transcriber a tenant's voice notes use (`access`: its model account, `rt.model_access`), or None (off)."""
    if not configured(settings):
        return None
    deployment_key = settings.llm_api_key if settings.llm_provider == "openai" else ""
    if settings.transcription_base_url:
        base_url, api_key = settings.transcription_base_url, deployment_key
    elif access is not None and access.own and access.provider == "openai" and access.api_key and not access.base_url:
        base_url, api_key = OPENAI_BASE_URL, access.api_key
    else:
        own_server = settings.llm_base_url if settings.llm_provider == "openai" else ""
        base_url, api_key = own_server or OPENAI_BASE_URL, deployment_key
    return _transcriber(base_url.rstrip("/"), api_key, settings.transcription_model.strip())


@functools.lru_cache(maxsize=64)
def _transcriber(base_url: str, api_key: str, model: str) -> OpenAITranscriber:
    """One client per account and model for the life of the process (it keeps connections alive)."""
    return OpenAITranscriber(base_url=base_url, api_key=api_key, model=model)


class OpenAITranscriber:
    """`POST {base_url}/audio/transcriptions` as OpenAI documents it."""

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: float = TIMEOUT_S) -> None:
        self.model = model
        self.base_url, self.api_key = base_url, api_key  # which account (never logged)
        self._url = f"{base_url}/audio/transcriptions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @property
    def token_logprobs(self) -> bool:
        """gpt-4o transcription models give token logprobs in `json`; whisper models give segments instead."""
        return self.model.startswith("gpt-4o")

    def transcribe(self, audio: bytes, *, mime: str) -> Transcript:
        if not audio:
            raise TranscriptionError("empty_audio", transient=False)
        base_mime = mime.split(";", 1)[0].strip().lower()
        name = f"voice.{EXTENSIONS.get(base_mime, 'ogg')}"
        data: dict[str, Any] = {"model": self.model, "language": LANGUAGE}
        if self.token_logprobs:
            data.update({"response_format": "json", "include[]": "logprobs"})
        else:
            data["response_format"] = "verbose_json"
        try:
            response = self._client.post(self._url, data=data, files={"file": (name, audio, base_mime or "audio/ogg")})
        except httpx.TimeoutException as exc:
            raise TranscriptionError("timeout", transient=True, detail=type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise TranscriptionError("unavailable", transient=True, detail=type(exc).__name__) from None
        if response.status_code != 200:
            transient = response.status_code in TRANSIENT_STATUSES
            log.warning("transcription refused", extra={"status": response.status_code, "bytes": len(audio)})
            raise TranscriptionError("unavailable" if transient else "refused", transient=transient,
                                     detail=f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TranscriptionError("bad_output", transient=False, detail="not JSON") from None
        return read_transcript(body)


def read_transcript(body: Any) -> Transcript:
    """A transcription answer (`json` or `verbose_json`) as a Transcript. Raises TranscriptionError."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise TranscriptionError("bad_output", transient=False, detail="no text")
    text = " ".join(body["text"].split())
    if not text:
        raise TranscriptionError("nothing_said", transient=False)
    duration = body.get("duration")
    return Transcript(text=text, confidence=confidence(body),
                      language=body["language"] if isinstance(body.get("language"), str) else None,
                      duration_s=float(duration) if isinstance(duration, int | float) else None)


def confidence(body: dict[str, Any]) -> float | None:
    """How sure the model was, 0..1: from the segments (duration-weighted) or the token logprobs; else None."""
    segments = [s for s in body.get("segments") or [] if isinstance(s, dict)
                and isinstance(s.get("avg_logprob"), int | float)]
    if segments:
        weights = [max(float(s.get("end") or 0) - float(s.get("start") or 0), 0.0) for s in segments]
        if sum(weights) <= 0:
            weights = [1.0] * len(segments)
        total = sum(w * min(math.exp(float(s["avg_logprob"])), 1.0) for w, s in zip(weights, segments, strict=True))
        return round(total / sum(weights), 3)
    tokens = [float(t["logprob"]) for t in body.get("logprobs") or [] if isinstance(t, dict)
              and isinstance(t.get("logprob"), int | float)]
    if tokens:
        return round(sum(min(math.exp(lp), 1.0) for lp in tokens) / len(tokens), 3)
    return None

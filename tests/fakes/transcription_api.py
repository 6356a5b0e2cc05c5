"""A stand-in for OpenAI's transcription API (`POST /v1/audio/transcriptions`), on loopback.

Speaks the wire format OpenAI documents and OpenAI-compatible servers
(faster-whisper-server / speaches) share: a multipart/form-data request with
`file`, `model`, `language`, `response_format` (`json`, `verbose_json`, `text`)
and `include[]`; Bearer auth (401 with OpenAI's error envelope otherwise).
`verbose_json` answers with `segments` (each with `avg_logprob`); `json` with
token `logprobs` when `include[]=logprobs` was asked.

Answers are scripted per test (`say`, `fail`); with nothing scripted the fake
says `default_text`, or answers 500 when there is none. `requests` records what
each request carried (the form fields, the file's name, type and size).

Imports nothing from the project: it is OpenAI, not us.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.loopback import LoopbackServer, header
from tests.fakes.model_replies import ModelHandler

DEFAULT_KEY = "sk-test-transcribe"
Answer = tuple[int, dict[str, Any], bytes | None, float]


@dataclass
class Said:
    """One scripted answer: the text and each segment's probability, or an HTTP error."""

    text: str = ""
    probability: float = 0.9  # exp(avg_logprob) of every segment / logprob token
    status: int = 200
    delay_s: float = 0.0


class FakeTranscriptionAPI(LoopbackServer):
    handler_class = ModelHandler

    def __init__(self, *, api_key: str = DEFAULT_KEY, default_text: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.default_text = default_text
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Said] = deque()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def say(self, text: str, *, probability: float = 0.9, delay_s: float = 0.0) -> None:
        """The next request is answered with `text`."""
        with self.lock:
            self._script.append(Said(text=text, probability=probability, delay_s=delay_s))

    def fail(self, status: int = 503, n: int = 1) -> None:
        """The next `n` requests fail with `status` (OpenAI's error envelope)."""
        with self.lock:
            self._script.extend(Said(status=status) for _ in range(n))

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != "/v1/audio/transcriptions":
            return 404, _error("Unknown request URL", "invalid_request_error"), None, 0.0
        if self.api_key and header(headers, "authorization") != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"), None, 0.0
        form = _multipart(header(headers, "content-type"), body)
        if form is None:
            return 400, _error("Expected a multipart/form-data body", "invalid_request_error"), None, 0.0
        fields, files = form
        upload = files.get("file")
        if upload is None or not fields.get("model"):
            return 400, _error("'file' and 'model' are required", "invalid_request_error"), None, 0.0
        with self.lock:
            self.requests.append({**fields, "filename": upload[0], "content_type": upload[1],
                                  "size": len(upload[2]), "audio": upload[2]})
            said = self._script.popleft() if self._script else (
                Said(text=self.default_text) if self.default_text is not None else Said(status=500))
        if said.status != 200:
            return said.status, _error("The server had an error while processing your request.",
                                       "server_error"), None, said.delay_s
        response_format = fields.get("response_format", "json")
        if response_format == "text":
            return 200, {}, said.text.encode(), said.delay_s
        if response_format == "verbose_json":
            return 200, _verbose(said, fields.get("language")), None, said.delay_s
        answer: dict[str, Any] = {"text": said.text, "usage": {"type": "tokens", "input_tokens": 50,
                                                                "output_tokens": len(said.text.split())}}
        if "logprobs" in fields.get("include[]", ""):
            answer["logprobs"] = [{"token": word, "logprob": math.log(said.probability), "bytes": list(word.encode())}
                                  for word in said.text.split()]
        return 200, answer, None, said.delay_s


def _verbose(said: Said, language: str | None) -> dict[str, Any]:
    """`verbose_json`: two segments (or one) whose probabilities are `said.probability`."""
    words = said.text.split()
    half = max(len(words) // 2, 1)
    parts = [" ".join(words[:half]), " ".join(words[half:])] if len(words) > 1 else [said.text]
    segments = [{"id": i, "seek": 0, "start": 2.0 * i, "end": 2.0 * (i + 1), "text": " " + part,
                 "tokens": [50364 + j for j in range(len(part.split()))], "temperature": 0.0,
                 "avg_logprob": math.log(said.probability), "compression_ratio": 1.1, "no_speech_prob": 0.01}
                for i, part in enumerate(parts) if part]
    return {"task": "transcribe", "language": {"es": "spanish"}.get(language or "", language or "spanish"),
            "duration": 2.0 * len(segments), "text": said.text, "segments": segments,
            "usage": {"type": "duration", "seconds": math.ceil(2.0 * len(segments))}}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]] | None:
    """Form fields and files of a multipart/form-data body; None when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        return None
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        payload = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, part.get_content_type(), payload)
        else:
            fields[name] = payload.decode()
    return fields, files


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}

"""Chat with the bot from a terminal, as a WhatsApp customer, through the simulator's JSON API.

    python scripts/chat.py --from +50370000001 [--name Juan] [--url http://127.0.0.1:8000]

Each line typed is sent as the customer's message (through the real webhook,
queue and worker); the bot's replies are printed when they arrive (up to
--wait seconds). Buttons and lists are printed as numbered options: typing a
number picks that option of the last one shown. Commands: /reset (close the
conversation), /loc LAT LON [name] (send a location), /file PATH[,PATH...] [comment]
(send files: a photo, a PDF, an audio; several photos are an album), /voice PATH (an
audio file as a voice note), /quit. Ctrl-D or Ctrl-C leaves. The web server must
run with the simulator enabled (not production) and a worker must be running, or no
reply comes back.

Talks HTTP only: no project imports, so it runs from any checkout or machine.
"""

from __future__ import annotations

import argparse
import mimetypes
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
POLL_S = 0.4
QUIET_S = 1.2  # after the last reply arrived, how long to wait for more before reading the next line
FILE_LABELS = {"image": "📷 foto", "sticker": "🙂 sticker", "audio": "🎵 audio", "video": "🎬 video",
               "document": "📄 documento"}
STATUS_LABELS = {
    "pending": "🕓 pendiente", "sending": "🕓 enviando", "accepted": "✓ aceptado", "sent": "✓ enviado",
    "delivered": "✓✓ entregado", "read": "✓✓ leído", "failed": "⚠ falló",
}


class ChatError(Exception):
    """The simulator API could not be reached or refused the request; the message says why."""


class SimulatorClient:
    """The three simulator endpoints. Every failure becomes a ChatError."""

    def __init__(self, http: httpx.Client, phone: str, name: str | None) -> None:
        self.http = http
        self.phone = phone
        self.name = name

    def send(self, content: dict[str, Any]) -> str:
        body: dict[str, Any] = {"from": self.phone, **content}
        if self.name:
            body["name"] = self.name
        return str(self._call("POST", "/simulator/api/send", json=body)["message_id"])

    def send_files(self, paths: list[Path], caption: str | None, voice: bool) -> list[str]:
        """Post files as the customer's WhatsApp would (one message each); their message ids."""
        form: dict[str, str] = {"from": self.phone}
        if self.name:
            form["name"] = self.name
        if caption:
            form["caption"] = caption
        if voice:
            form["voice"] = "1"
        files = [("file", (path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "")) for path in paths]
        return [str(i) for i in self._call("POST", "/simulator/api/media", data=form, files=files)["message_ids"]]

    def messages(self, after: int) -> list[dict[str, Any]]:
        data = self._call("GET", "/simulator/api/messages", params={"phone": self.phone, "after": after})
        return list(data["messages"])

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/simulator/api/reset", json={"from": self.phone})

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ChatError(f"cannot reach {self.http.base_url}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 404 and not data:
            raise ChatError(f"{path} not found: is the simulator enabled on {self.http.base_url}?")
        if not response.is_success:
            raise ChatError(str(data.get("error") or f"HTTP {response.status_code}"))
        if not isinstance(data, dict):
            raise ChatError(f"unexpected answer from {path}")
        return data


class Printer:
    """Turns bot messages into terminal lines; remembers the options of the last buttons/list."""

    def __init__(self, out: TextIO, styled: bool) -> None:
        self.out = out
        self.styled = styled
        self.options: list[dict[str, str]] = []

    def message(self, message: dict[str, Any]) -> None:
        if message["direction"] == "in" and message["kind"] == "media":
            payload = message.get("payload") or {}
            label = "🎤 nota de voz" if payload.get("media_voice") else FILE_LABELS.get(payload.get("media_type"), "📎")
            name = f" ({payload['media_filename']})" if payload.get("media_filename") else ""
            self._line(f"tú: {label}{name}" + (f" {message['body']}" if message.get("body") else ""))
            return
        if message["direction"] == "in" and message["kind"] in ("transcript", "photo_text"):
            said = "el bot entendió tu audio" if message["kind"] == "transcript" else "el bot leyó en tu foto"
            self.note(f"({said}: {message.get('body') or '—'})")
            return
        if message["direction"] == "in":
            self._line(f"tú: {message.get('body') or '[' + message['kind'] + ']'}")
            return
        shown = message.get("shown") or message.get("payload") or {}
        status = STATUS_LABELS.get(message.get("status", ""), message.get("status", ""))
        lines: list[str] = []
        kind = shown.get("kind")
        if shown.get("header"):
            lines.append(self._format(f"*{shown['header']}*"))
        if kind in ("text", "buttons", "list"):
            lines.extend(self._format(shown.get("body", "")).splitlines())
        elif kind == "location":
            lines.append("📍 " + " — ".join(p for p in (shown.get("name"), shown.get("address")) if p))
            lines.append(f"https://www.openstreetmap.org/?mlat={shown.get('latitude')}&mlon={shown.get('longitude')}")
        else:
            lines.extend((message.get("body") or "").splitlines())
        if shown.get("footer"):
            lines.append(self._dim(shown["footer"]))
        if kind == "buttons":
            buttons = shown.get("buttons", [])
            self.options = [{"type": "button", "id": b["id"], "title": b["title"]} for b in buttons]
            lines.extend(f"  {i}. [{o['title']}]" for i, o in enumerate(self.options, start=1))
        elif kind == "list":
            rows = shown.get("rows", [])
            self.options = [{"type": "list", "id": r["id"], "title": r["title"]} for r in rows]
            lines.append(self._dim(f"  ☰ {shown.get('button_label') or 'Ver opciones'}"))
            for i, row in enumerate(rows, start=1):
                extra = f" — {row['description']}" if row.get("description") else ""
                lines.append(f"  {i}. {row['title']}{self._dim(extra)}")
        self._line(f"bot ({status}):")
        for line in lines or [""]:
            self._line("  " + line)

    def note(self, text: str) -> None:
        self._line(self._dim(text))

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _format(self, text: str) -> str:
        if not self.styled:
            return text
        text = re.sub(r"(?<!\w)\*(?=\S)([^*\n]*?\S)\*(?!\w)", "\033[1m\\1\033[22m", text)
        return re.sub(r"(?<!\w)_(?=\S)([^_\n]*?\S)_(?!\w)", "\033[3m\\1\033[23m", text)

    def _dim(self, text: str) -> str:
        return f"\033[2m{text}\033[22m" if self.styled and text else text


def wait_for_replies(client: SimulatorClient, printer: Printer, after: int, sent_id: str | None,
                     wait_s: float) -> tuple[int, int]:
    """Print what arrives after message `after` until the bot went quiet; returns (last id, bot replies)."""
    deadline = time.monotonic() + wait_s
    last_arrival: float | None = None
    replies = 0
    while time.monotonic() < deadline:
        if last_arrival is not None and time.monotonic() - last_arrival >= QUIET_S:
            break
        new = sorted(client.messages(after), key=lambda m: (m.get("order", m["id"]), m["id"]))
        for message in new:
            after = max(after, int(message["id"]))
            if message["direction"] == "in" and message.get("provider_message_id") == sent_id:
                continue  # our own line, already on the screen
            printer.message(message)
            if message["direction"] == "out":
                replies += 1
                last_arrival = time.monotonic()
        time.sleep(POLL_S)
    return after, replies


def content_for(line: str, options: list[dict[str, str]]) -> dict[str, Any] | None:
    """What to send for a typed line; None for a command handled elsewhere. Raises ValueError on bad input."""
    text = line.strip()
    if text.isdigit() and options and 1 <= int(text) <= len(options):
        return {"reply": options[int(text) - 1]}
    if text.startswith("/loc"):
        parts = text.split(maxsplit=3)
        if len(parts) < 3:
            raise ValueError("usage: /loc LATITUDE LONGITUDE [name]")
        location: dict[str, Any] = {"latitude": float(parts[1]), "longitude": float(parts[2])}
        if len(parts) == 4:
            location["name"] = parts[3]
        return {"location": location}
    if text.startswith(("/file", "/voice")):
        command, _, rest = text.partition(" ")
        voice = command == "/voice"
        spec, _, caption = rest.strip().partition(" ")
        if not spec:
            raise ValueError("usage: /file PATH[,PATH...] [comment]  or  /voice PATH")
        paths = [Path(p).expanduser() for p in spec.split(",") if p]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
        return {"files": paths, "caption": None if voice else caption.strip() or None, "voice": voice}
    return {"text": line.rstrip("\r\n")}


def _read_line(stdin: TextIO, interactive: bool) -> str:
    if interactive:
        return input("> ") + "\n"
    line = stdin.readline()
    if not line:
        raise EOFError
    return line


def chat(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    interactive = stdin.isatty()
    printer = Printer(out, styled=out.isatty())
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=10.0) as http:
        client = SimulatorClient(http, args.phone, args.name)
        try:
            last_id = _newest_id(client)
        except ChatError as exc:
            print(f"chat: {exc}", file=sys.stderr)
            return 1
        printer.note(f"Chateando como {args.phone} con {args.url}. Ctrl-D sale; /reset, /loc LAT LON, "
                     "/file RUTA [comentario], /voice RUTA, /quit.")
        while True:
            try:
                line = _read_line(stdin, interactive)
            except EOFError:
                return 0
            command = line.strip()
            if not command:
                continue
            if command in ("/quit", "/exit"):
                return 0
            try:
                if command == "/reset":
                    closed = client.reset().get("closed_conversations", [])
                    printer.note("conversación cerrada" if closed else "no había conversación abierta")
                    continue
                try:
                    content = content_for(line, printer.options)
                except ValueError as exc:
                    printer.note(str(exc))
                    continue
                assert content is not None
                if "reply" in content:
                    printer.note(f"→ {content['reply']['title']}")
                sent_id: str | None = None
                if "files" in content:  # each file printed as it is stored, with the bot's replies
                    client.send_files(content["files"], content["caption"], content["voice"])
                else:
                    sent_id = client.send(content)
                last_id, replies = wait_for_replies(client, printer, last_id, sent_id, args.wait)
                if not replies:
                    printer.note(f"(sin respuesta en {args.wait:g} s: ¿está corriendo el worker?)")
            except ChatError as exc:
                printer.note(f"error: {exc}")


def _newest_id(client: SimulatorClient) -> int:
    """The id of the newest stored message of this customer: only what comes after it is printed."""
    last = 0
    while True:
        page = client.messages(last)
        if not page:
            return last
        last = max(int(m["id"]) for m in page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat with the Encargo bot through the simulator API")
    parser.add_argument("--from", dest="phone", default="+50370000001", help="customer number (E.164)")
    parser.add_argument("--name", default=None, help="WhatsApp profile name")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"web server (default {DEFAULT_URL})")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for replies (default 10)")
    args = parser.parse_args(argv)
    try:
        return chat(args, sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        print(file=sys.stdout)
        return 130


if __name__ == "__main__":
    sys.exit(main())

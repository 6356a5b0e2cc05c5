"""E-mails of the console over SMTP (SMTP_URL, SMTP_FROM, SMTP_TIMEOUT_S): password resets for agents, and
(`Mailer.send_message`) the weekly report and alerts a company's admins get.

`Mailer.deliver` hands one reset link on. With SMTP configured, a background
thread of this process sends a short Spanish e-mail with the link and its
lifetime, so the "forgot password" page answers at once and in the same time
whether or not the address belongs to an agent (no account enumeration by
timing; a slow mail server holds no web thread). Once mailed, the log says only
that a reset e-mail went to agent N: never the link, the token or the address.
When the e-mail cannot be sent (server down, refused login, no STARTTLS), the log
gets a warning without secrets and then the link itself, as without SMTP, so an
operator can still help the agent.

smtp://host:587 upgrades the connection with STARTTLS, which is required unless
the host is a loopback address (a local relay); smtps://host:465 speaks TLS from
the start. Certificates are verified against the system's CAs.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import smtplib
import ssl
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from config import Settings

log = logging.getLogger(__name__)

SUBJECT = "Cambia tu contraseña de la consola de soporte"
BODY = """Hola {name}:

Recibimos una solicitud para cambiar tu contraseña de la consola de soporte de {company}.
Abre este enlace para elegir una nueva:

{link}

El enlace sirve una sola vez y vence en {lifetime}.

Si no fuiste tú, ignora este correo: tu contraseña actual sigue funcionando.

{company}
"""
# Sends running at once; further ones wait their turn in this process.
SENDERS = 2


class MailError(Exception):
    """The e-mail could not be sent safely (the message carries no secret)."""


@dataclass(frozen=True)
class ResetMail:
    agent_id: int
    to: str
    name: str
    company: str
    link: str
    ttl_s: int


def lifetime_text(ttl_s: int) -> str:
    """3600 -> '1 hora', 1800 -> '30 minutos', 172800 -> '2 días'."""
    for size, one, many in ((86400, "día", "días"), (3600, "hora", "horas"), (60, "minuto", "minutos")):
        if ttl_s >= size and (ttl_s % size == 0 or size == 60):
            count = ttl_s // size
            return f"{count} {one if count == 1 else many}"
    return f"{ttl_s} segundos"


def compose(mail: ResetMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((mail.name, mail.to))
    message["Subject"] = SUBJECT
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid("reset", domain=_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(BODY.format(name=mail.name.split(" ")[0] or mail.name, company=mail.company,
                                    link=mail.link, lifetime=lifetime_text(mail.ttl_s)))
    return message


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Mailer:
    """Hands reset links on: by e-mail when SMTP_URL is set, else (and when sending fails) to the log."""

    def __init__(self, settings: Settings) -> None:
        self.sender = settings.smtp_from
        self.timeout_s = settings.smtp_timeout_s
        self.enabled = bool(settings.smtp_url)
        parts = urlsplit(settings.smtp_url)  # validated by config.Settings
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname or ""
        self._port = parts.port or (465 if self._tls else 587)
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[bool]] = set()

    def deliver(self, mail: ResetMail) -> None:
        """E-mail the link in the background, or log it now when no SMTP server is configured."""
        if not self.enabled:
            log_link(mail)
            return
        context = contextvars.copy_context()  # the request's correlation id follows into the log lines
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(SENDERS, thread_name_prefix="console-mail")
            future = self._executor.submit(context.run, self.send, mail)
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def send(self, mail: ResetMail) -> bool:
        """Send now; True when the server accepted the e-mail. Never raises: a failure logs the link instead."""
        try:
            self._send(compose(mail, self.sender))
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the operator must still get the link
            code = getattr(exc, "smtp_code", None)
            log.warning("password reset e-mail for agent %s not sent (%s%s); the link goes to the log",
                        mail.agent_id, type(exc).__name__, f" {code}" if code else "")
            log_link(mail)
            return False
        log.info("password reset e-mail sent to agent %s", mail.agent_id, extra={"agent_id": mail.agent_id})
        return True

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Wait for the e-mails handed on so far; True when all are done (tests, orderly shutdown)."""
        with self._lock:
            pending = set(self._pending)
        return not wait(pending, timeout=timeout_s).not_done

    def close(self) -> None:
        """Finish the queued e-mails and stop the sending threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def send_message(self, message: EmailMessage) -> None:
        """Send a composed e-mail now (reports and alerts: console/report_mail.py, console/alert_mail.py).

        Raises MailError when SMTP is not configured or the connection is unsafe, smtplib's and the socket's
        errors when the server fails: the caller keeps its claim open so the e-mail is tried again.
        """
        if not self.enabled:
            raise MailError("SMTP_URL is not set")
        self._send(message)

    def _forget(self, future: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        helo = _domain(self.sender)
        client: smtplib.SMTP
        if self._tls:
            client = smtplib.SMTP_SSL(self._host, self._port, local_hostname=helo, timeout=self.timeout_s,
                                      context=context)
        else:
            client = smtplib.SMTP(self._host, self._port, local_hostname=helo, timeout=self.timeout_s)
        with client:
            client.ehlo()
            if not self._tls:
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif not _is_loopback(self._host):
                    raise MailError("the server offers no STARTTLS")
            if self._user:
                client.login(self._user, self._password)
            client.send_message(message)


def log_link(mail: ResetMail) -> None:
    """No e-mail: the one-time link goes to the log for the operator, who passes it on."""
    log.warning("password reset link for agent %s: %s", mail.agent_id, mail.link)

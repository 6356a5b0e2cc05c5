"""Password reset e-mails (console/mailer.py) through a real SMTP conversation with a mail server on loopback
(tests/fakes/smtp_server.py): the e-mail reaches the agent and its link works; the link stays out of the log
when mailed and goes to the log when mailing fails; the page answers the same in every case."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import ConfigError, Settings
from console.mailer import Mailer, lifetime_text
from tests.console_support import make_agent
from tests.fakes.smtp_server import FakeSMTPServer, Received, closed_port
from web.app import create_app

MAIL_USER = "soporte@encargo.test"
MAIL_PASSWORD = "p@ss:w0rd-secreto"  # reaches the server percent-decoded
SENDER = "Encargo Soporte <soporte@encargo.test>"
NEW_PASSWORD = "una clave nueva larga"


def smtp_url(port: int, scheme: str = "smtp") -> str:
    return f"{scheme}://soporte%40encargo.test:p%40ss%3Aw0rd-secreto@127.0.0.1:{port}"


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return Settings.from_env({**base_env, "SMTP_FROM": SENDER, "SMTP_TIMEOUT_S": "5"})


@pytest.fixture
def smtp() -> Iterator[FakeSMTPServer]:
    with FakeSMTPServer(users={MAIL_USER: MAIL_PASSWORD}) as server:
        yield server


def console_app(settings: Settings, **overrides: object) -> Flask:
    return create_app(settings.with_overrides(**overrides))


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps a test creates; afterwards their mail threads finish and their pools close."""
    made: list[Flask] = []
    yield made
    for app in made:
        mailer(app).close()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


def mailer(app: Flask) -> Mailer:
    found = app.extensions["console"].mailer
    if found is None:  # no reset asked yet
        found = app.extensions["console"].mailer = Mailer(app.extensions["settings"])
    assert isinstance(found, Mailer)
    return found


def csrf_of(client: FlaskClient, path: str = "/console/password/forgot") -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def ask_reset(client: FlaskClient, email: str) -> str:
    """Submit the forgot-password form; returns the page the person sees (after the e-mail work is done)."""
    answer = client.post("/console/password/forgot", data={"email": email, "csrf_token": csrf_of(client)})
    assert answer.status_code == 200
    app = client.application
    assert mailer(app).wait(15)
    return answer.get_data(as_text=True)


def reset_and_log_in(client: FlaskClient, path: str, email: str) -> None:
    """Follow the link: choose a new password, then log in with it."""
    token = csrf_of(client)
    assert client.get(path).status_code == 200
    done = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/console/login"
    assert client.get(path).status_code == 410  # one time only
    login = client.post("/console/login", data={"email": email, "password": NEW_PASSWORD, "csrf_token": token})
    assert login.status_code == 302 and login.headers["Location"] == "/console"
    assert "Carlos Rivas" in client.get("/console").get_data(as_text=True)


def the_link(mail: Received, base: str) -> str:
    match = re.search(re.escape(base) + r"(/console/password/reset/[A-Za-z0-9_-]+)\s", mail.text)
    assert match, mail.text
    return match.group(1)


def test_the_reset_email_reaches_the_agent_and_its_link_sets_a_new_password(
        settings: Settings, smtp: FakeSMTPServer, apps: list[Flask], db_pool: ConnectionPool,
        caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(settings, smtp_url=smtp_url(smtp.port))
    apps.append(app)
    agent = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    with app.test_client() as client, caplog.at_level(logging.INFO):
        page = ask_reset(client, "Carlos@Example.com")
        [mail] = smtp.wait_for(1)
        assert mail.rcpt_to == ("carlos@example.com",) and mail.mail_from == MAIL_USER
        assert mail.user == MAIL_USER and smtp.logins == [(MAIL_USER, MAIL_PASSWORD)]
        message = mail.message
        assert message["Subject"] == "Cambia tu contraseña de la consola de soporte"
        assert message["From"] == SENDER and message["To"] == "Carlos Rivas <carlos@example.com>"
        assert "Hola Carlos:" in mail.text and "vence en 1 hora" in mail.text
        assert "consola de soporte de Transportes Express El Salvador" in mail.text
        path = the_link(mail, "http://localhost")  # no PUBLIC_BASE_URL: the address the request came to

        token = path.rsplit("/", 1)[1]
        assert token not in caplog.text and "/console/password/reset/" not in caplog.text
        assert f"password reset e-mail sent to agent {agent.id}" in caplog.text
        assert MAIL_PASSWORD not in caplog.text

        assert "te llegará un enlace de un solo uso" in page
        unknown = ask_reset(client, "nadie@example.com")
        assert unknown == page  # the same answer: nobody learns which addresses belong to agents
        assert len(smtp.received) == 1
        reset_and_log_in(client, path, "carlos@example.com")


def self_signed(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 and a server context presenting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


def test_starttls_when_offered_and_the_public_base_url_in_the_link(
        settings: Settings, apps: list[Flask], db_pool: ConnectionPool, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, server_tls = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the mail server's certificate is trusted here
    with FakeSMTPServer(users={MAIL_USER: MAIL_PASSWORD}, tls=server_tls) as smtp:
        app = console_app(settings, smtp_url=smtp_url(smtp.port), public_base_url="https://soporte.encargo.test",
                          console_reset_ttl_s=1800)
        apps.append(app)
        make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
        with app.test_client() as client:
            ask_reset(client, "carlos@example.com")
            [mail] = smtp.wait_for(1)
            assert mail.tls is True and mail.user == MAIL_USER  # the password only crossed inside TLS
            assert "vence en 30 minutos" in mail.text
            reset_and_log_in(client, the_link(mail, "https://soporte.encargo.test"), "carlos@example.com")


def test_an_untrusted_certificate_is_refused_and_the_link_goes_to_the_log(
        settings: Settings, apps: list[Flask], db_pool: ConnectionPool, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _, server_tls = self_signed(tmp_path)
    with FakeSMTPServer(users={MAIL_USER: MAIL_PASSWORD}, tls=server_tls) as smtp:
        app = console_app(settings, smtp_url=smtp_url(smtp.port))
        apps.append(app)
        agent = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
        with app.test_client() as client, caplog.at_level(logging.INFO):
            ask_reset(client, "carlos@example.com")
            assert smtp.received == [] and smtp.logins == []  # no password sent over an unverified connection
            assert f"password reset e-mail for agent {agent.id} not sent (SSLCertVerificationError)" in caplog.text
            assert re.search(rf"password reset link for agent {agent.id}: http://localhost/console/password/reset/",
                             caplog.text)


@pytest.mark.parametrize("failure", ["server down", "login refused"])
def test_when_mailing_fails_the_link_goes_to_the_log_and_the_page_answers_the_same(
        failure: str, settings: Settings, smtp: FakeSMTPServer, apps: list[Flask], db_pool: ConnectionPool,
        caplog: pytest.LogCaptureFixture) -> None:
    working = console_app(settings, smtp_url=smtp_url(smtp.port))
    apps.append(working)
    if failure == "server down":
        url, reason = smtp_url(closed_port()), "ConnectionRefusedError"
    else:
        url, reason = smtp_url(smtp.port).replace("w0rd", "wrong"), "SMTPAuthenticationError 535"
    broken = console_app(settings, smtp_url=url)
    apps.append(broken)
    agent = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    with working.test_client() as client:
        expected = ask_reset(client, "nadie@example.com")

    with broken.test_client() as client, caplog.at_level(logging.INFO):
        page = ask_reset(client, "carlos@example.com")
        assert re.sub(r'content="[^"]+"', "", page) == re.sub(r'content="[^"]+"', "", expected)  # but the CSRF token
        assert smtp.received == []
        assert f"password reset e-mail for agent {agent.id} not sent ({reason})" in caplog.text
        assert "secreto" not in caplog.text and "wrong" not in caplog.text  # no password in the log
        link = re.search(rf"password reset link for agent {agent.id}: http://localhost(/console/password/reset/\S+)",
                         caplog.text)
        assert link, caplog.text
        reset_and_log_in(client, link.group(1), "carlos@example.com")


GOOD_ENV = {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "REDIS_URL": "redis://127.0.0.1:6379/0",
            "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(), "PHONE_HASH_KEY": "k", "SMTP_FROM": SENDER}


@pytest.mark.parametrize(("change", "message"), [
    ({"SMTP_URL": "http://mail.example.com"}, "SMTP_URL must look like smtp://user:password@host:587"),
    ({"SMTP_URL": "mail.example.com:587"}, "(the scheme is not smtp or smtps)"),
    ({"SMTP_URL": "smtp://user:secreto@:587"}, "SMTP_URL must look like smtp://user:password@host:587 or "
                                               "smtps://user:password@host:465 (no host)"),
    ({"SMTP_URL": "smtps://user:secreto@mail.example.com:smtp"}, "(its port is not a number from 1 to 65535)"),
    ({"SMTP_URL": "smtp://user:secreto@mail.example.com:99999"}, "(its port is not a number from 1 to 65535)"),
    ({"SMTP_URL": "smtp://user@mail.example.com"}, "(a user needs a password; write @ in either as %40)"),
    ({"SMTP_URL": "smtp://user:secreto@mail.example.com:587/x"}, "(nothing may follow host:port)"),
    ({"SMTP_URL": "smtp://mail.example.com", "SMTP_FROM": ""}, "SMTP_FROM is required when SMTP_URL is set"),
    ({"SMTP_URL": "smtp://mail.example.com", "SMTP_FROM": "Soporte"}, "SMTP_FROM='Soporte' is not an e-mail"),
    ({"SMTP_TIMEOUT_S": "0"}, "SMTP_TIMEOUT_S=0.0 is outside 0.5..120"),
])
def test_a_malformed_smtp_setting_is_a_config_error_naming_it(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD_ENV, **change})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "secreto" not in str(info.value)  # the URL's password is never repeated


def test_production_mail_needs_the_public_base_url() -> None:
    production = {**GOOD_ENV, "ENCARGO_ENV": "production", "WHATSAPP_PROVIDER": "twilio",
                  "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t",
                  "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886", "CONSOLE_SESSION_SECRET": "s" * 32,
                  "INTERNAL_EVENTS_SECRET": "e" * 32, "SMTP_URL": "smtps://u:secreto@mail.example.com"}
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL is required in production when SMTP_URL is set"):
        Settings.from_env(production)
    settings = Settings.from_env({**production, "PUBLIC_BASE_URL": "https://soporte.example.com"})
    assert settings.smtp_url.startswith("smtps://") and settings.redacted()["smtp_url"] is True


@pytest.mark.parametrize(("ttl", "text"), [(60, "1 minuto"), (1800, "30 minutos"), (5400, "90 minutos"),
                                           (3600, "1 hora"), (7200, "2 horas"), (86400, "1 día"),
                                           (604800, "7 días")])
def test_the_lifetime_in_words(ttl: int, text: str) -> None:
    assert lifetime_text(ttl) == text

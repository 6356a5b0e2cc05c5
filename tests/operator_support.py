"""Shared by the operator area's tests: an operator, a logged-in client, a customer's Meta message to any number."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from storage import operators
from storage.operators import Operator
from tests.harness import post_meta

OPERATOR_EMAIL = "ops@proveedor.example"
OPERATOR_PASSWORD = "una clave larga de operador"


def make_operator(pool: ConnectionPool, email: str = OPERATOR_EMAIL) -> Operator:
    with pool.connection() as conn:
        return operators.create(conn, email, OPERATOR_PASSWORD)


def page_csrf(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, path
    return match.group(1)


def operator_client(app: Flask, email: str = OPERATOR_EMAIL) -> FlaskClient:
    client = app.test_client()
    token = page_csrf(client, "/operator/login")
    answer = client.post("/operator/login", data={"email": email, "password": OPERATOR_PASSWORD, "csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/operator", answer.get_data(as_text=True)
    return client


def operator_csrf(client: FlaskClient) -> str:
    with client.session_transaction("/operator") as session:
        return str(session["csrf"])


def customer_writes(client: FlaskClient, number: str, phone: str, text: str, name: str = "Cliente") -> None:
    """A customer's signed Meta webhook to the business number `number` (the worker is run by the caller)."""
    body: dict[str, Any] = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": number},
            "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": name}}],
            "messages": [{"from": phone.lstrip("+"), "id": f"wamid.OPS{uuid.uuid4().hex}",
                          "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}]}}]}]}
    assert post_meta(client, body).status_code == 200

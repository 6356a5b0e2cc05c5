"""Console pages about people rather than cases: login, logout, password reset, canned answers (supervisors
and admins) and the company's agents (admins)."""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from console import auth, canned, login_limit
from console.blueprint import bp, mailer, state
from console.database import get_pool
from console.mailer import ResetMail
from handoff import agents
from handoff.agents import AgentError

log = logging.getLogger(__name__)


# -- login, logout, password reset -------------------------------------------------------------------


@bp.get("/login")
def login() -> str:
    return render_template("console/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_submit() -> Any:
    """Log in with e-mail and password. An address may hold accounts at several companies: the password
    picks the account (handoff/agents.py `authenticate`); when it opens several, the form asks which company
    (only those the password opens) and the person types the password again."""
    email = (request.form.get("email") or "").strip()
    password = request.form.get("password") or ""
    target = request.form.get("next") or ""
    company = (request.form.get("company") or "").strip() or None
    settings, redis_conn = state().settings, state().desk.redis
    address = auth.client_address()
    wait_s = login_limit.blocked_for(redis_conn, settings, email, address)
    if wait_s:
        log.warning("console login refused: too many failures")
        minutes = -(-wait_s // 60)
        error = (f"Demasiados intentos fallidos. Espera {minutes} {'minuto' if minutes == 1 else 'minutos'} "
                 "e inténtalo de nuevo, o cambia tu contraseña con «¿Olvidaste tu contraseña?».")
        return render_template("console/login.html", next=target, error=error), 429
    try:
        with get_pool().connection() as conn:
            agent = agents.authenticate(conn, email, password, company) if email and password else None
    except agents.ChooseCompany as question:
        return render_template("console/login.html", next=target, error=None, email=email,
                               companies=question.companies)
    if agent is None:
        login_limit.record_failure(redis_conn, settings, email, address)
        return render_template("console/login.html", next=target, error="Correo o contraseña incorrectos."), 401
    login_limit.clear_address(redis_conn, settings, email, address)
    auth.log_in(agent)
    log.info("agent logged in", extra={"agent_id": agent.id})
    return redirect(target if target.startswith("/console") and not target.startswith("//") else url_for(".queue"))


@bp.post("/logout")
def logout() -> Any:
    """End the session on the server: a copy of the cookie stops working at once."""
    auth.log_out()
    return redirect(url_for(".login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> Any:
    """The answer is the same whether or not the address is an agent's, and whether or not mailing works.

    An address with accounts at several companies gets one mail per account, each naming its company and
    resetting only that account (the inbox's owner holds them all; no company learns of another).

    In production without SMTP_URL no link is made (nobody would read the log in time, and a link in a
    production log is a secret lying around): the page says resets are unavailable instead.
    """
    sent = False
    settings = state().settings
    unavailable = settings.is_production and not settings.smtp_url
    if request.method == "POST" and not unavailable:
        email = (request.form.get("email") or "").strip()
        mails = []
        with get_pool().connection() as conn:
            for agent in agents.every_account(conn, email) if email else []:
                if not agent.active or not auth.reset_allowed(state().desk.redis, agent.id):
                    continue
                token = agents.create_reset(conn, agent.id, settings.console_reset_ttl_s)
                row = conn.execute("SELECT name FROM tenants WHERE id = %s", (agent.tenant_id,)).fetchone()
                company = str(row["name"]) if row else settings.tenant_name  # type: ignore[call-overload]
                mails.append(ResetMail(agent_id=agent.id, to=agent.email, name=agent.name, company=company,
                                       link=_public_url(url_for(".reset_password", token=token)),
                                       ttl_s=settings.console_reset_ttl_s))
        for mail in mails:  # the tokens are committed: each link works as soon as it arrives
            mailer().deliver(mail)
        sent = True
    return render_template("console/forgot.html", sent=sent, mailing=bool(settings.smtp_url),
                           unavailable=unavailable)


def _public_url(path: str) -> str:
    """PUBLIC_BASE_URL + path; without it, the address this request came to."""
    return (state().settings.public_base_url or request.host_url.rstrip("/")) + path


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    """Choose a new password with a one-time link. It ends every session of the agent, and clears the
    account's login failures: a reset is how a locked-out agent gets back in."""
    with get_pool().connection() as conn:
        status = agents.reset_status(conn, token)
        if status != agents.RESET_VALID:
            return render_template("console/reset.html", status=status, error=None), 410
        if request.method == "GET":
            return render_template("console/reset.html", status=status, error=None)
        password = request.form.get("password") or ""
        if password != (request.form.get("confirm") or ""):
            return render_template("console/reset.html", status=status, error="Las contraseñas no coinciden."), 400
        try:
            agent = agents.use_reset(conn, token, password)
        except AgentError as exc:
            return render_template("console/reset.html", status=status, error=str(exc)), 400
    if agent is None:  # used, replaced or expired meanwhile
        with get_pool().connection() as conn:
            status = agents.reset_status(conn, token)
        return render_template("console/reset.html", status=status, error=None), 410
    login_limit.clear_account(state().desk.redis, state().settings, agent.email)
    flash("Contraseña cambiada. Ya puedes entrar.")
    return redirect(url_for(".login"))


@bp.route("/password", methods=["GET", "POST"])
@auth.login_required
def change_password() -> Any:
    """An agent changes her own password: every session of hers ends, and this one starts afresh.

    Wrong current passwords count as failed logins of the account from this address (a stolen session
    cannot be used to guess the password).
    """
    agent = auth.require_agent()
    if request.method == "GET":
        return render_template("console/password.html", error=None)
    settings, redis_conn = state().settings, state().desk.redis
    address = auth.client_address()
    if login_limit.blocked_for(redis_conn, settings, agent.email, address):
        return render_template("console/password.html",
                               error="Demasiados intentos fallidos. Espera unos minutos e inténtalo de nuevo."), 429
    password = request.form.get("password") or ""
    if password != (request.form.get("confirm") or ""):
        return render_template("console/password.html", error="Las contraseñas nuevas no coinciden."), 400
    with get_pool().connection() as conn:
        if not agents.password_matches(conn, agent.id, request.form.get("current") or ""):
            login_limit.record_failure(redis_conn, settings, agent.email, address)
            return render_template("console/password.html", error="La contraseña actual no es correcta."), 400
        try:
            agents.set_password(conn, agent.id, password)  # ends every session of the agent, this one too
        except AgentError as exc:
            return render_template("console/password.html", error=str(exc)), 400
    auth.log_in(agent)  # a new session for the browser that made the change
    log.info("agent changed their password", extra={"agent_id": agent.id})
    flash("Contraseña cambiada. Se cerraron tus sesiones en otros navegadores.")
    return redirect(url_for(".queue"))


@bp.route("/canned", methods=["GET", "POST"])
@auth.login_required
def canned_page() -> Any:
    agent = auth.require_agent()
    error = None
    with get_pool().connection() as conn:
        if request.method == "POST":
            if not agent.can_manage:
                abort(403, description="Solo supervisores y administradores pueden cambiar las respuestas rápidas.")
            try:
                if request.form.get("delete"):
                    if not canned.remove(conn, agent.tenant_id, int(request.form["delete"])):
                        abort(404, description="No encontramos esa respuesta rápida.")
                else:
                    canned.add(conn, agent.tenant_id, request.form.get("title", ""), request.form.get("body", ""))
            except (canned.CannedError, ValueError) as exc:
                error = str(exc)
        answers = canned.for_tenant(conn, agent.tenant_id)
    return render_template("console/canned.html", canned=answers, error=error,
                           variables=canned.VARIABLES), 400 if error else 200


@bp.route("/agents", methods=["GET", "POST"])
@auth.login_required
def agents_page() -> Any:
    """Admins add agents of their company and deactivate or reactivate them."""
    agent = auth.require_agent()
    if agent.role != "admin":
        abort(403, description="Solo los administradores pueden gestionar agentes.")
    error, status = None, 200
    with get_pool().connection() as conn:
        if request.method == "POST":
            form = request.form
            try:
                if form.get("agent_id"):
                    target = int(form["agent_id"])
                    if target == agent.id:
                        raise AgentError("No puedes desactivarte a ti mismo.")
                    if not agents.set_active(conn, agent.tenant_id, target, form.get("active") == "1"):
                        abort(404, description="No encontramos ese agente.")
                else:
                    agents.create_agent(conn, tenant_id=agent.tenant_id, name=form.get("name", ""),
                                        email=form.get("email", ""), role=form.get("role", "agent"),
                                        password=form.get("password", ""))
            except (AgentError, ValueError) as exc:
                error, status = str(exc), 400
        team = agents.for_tenant(conn, agent.tenant_id)
    return render_template("console/agents.html", team=team, roles=agents.ROLES, error=error), status

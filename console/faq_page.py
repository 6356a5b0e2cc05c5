"""The company admin's "Preguntas frecuentes" pages: the FAQ and policies the bot answers with, and their history.

Only the company's admins see them (others get 403, as on the agents page).
Every save writes a new version (`storage.faq_versions`): an entry added,
edited or removed, the policies changed, or an earlier version restored; the
bot uses it within about a second, without a restart. A form carries the
version it was made from: when someone else saved meanwhile, it is refused
(409) instead of undoing their change. A version is named by its row id, so
another company's version answers 404 like one that does not exist.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from psycopg import Connection

from channels.outbound import Buttons, Text
from console import auth, faq_editing
from console.blueprint import bp, state, tenant_slug
from console.database import get_pool
from console.faq_editing import FaqFormError
from handoff.agents import Agent
from services import faq
from storage import faq_versions
from storage.faq_content import FaqData, changes, same_content

log = logging.getLogger(__name__)

NOT_ADMIN = "Solo los administradores pueden cambiar las preguntas frecuentes."
CONFLICT = "Alguien más guardó cambios mientras editabas. Revisa cómo quedó y vuelve a intentarlo."
NOTES = {"add": "Agregó una pregunta", "edit": "Editó una pregunta", "delete": "Quitó una pregunta",
         "policies": "Cambió las políticas"}


def _admin() -> Agent:
    agent = auth.require_agent()
    if agent.role != "admin":
        abort(403, description=NOT_ADMIN)
    return agent


def _current(conn: Connection[Any], agent: Agent) -> tuple[int, FaqData]:
    """The company's current version number and content (its seed file stored first, when it has one)."""
    found = faq_versions.current(conn, agent.tenant_id)
    if found is None:  # a malformed seed file is logged and left out
        faq_versions.seed_tenant(get_pool(), state().desk.redis, agent.tenant_id, tenant_slug(agent.tenant_id))
        found = faq_versions.current(conn, agent.tenant_id)
    if found is None:
        return 0, faq_versions.answering(conn, agent.tenant_id)  # nothing written yet: empty
    return found.version, found.data


@bp.route("/faq", methods=["GET", "POST"])
@auth.login_required
def faq_page() -> Any:
    """The entries, the policies (one text per topic) and the history; POST adds, edits or removes an entry
    (`action` add / edit / delete, `entry` the entry's id) or saves the policies (`action` policies)."""
    agent = _admin()
    error, status, editing = None, 200, None
    with get_pool().connection() as conn:
        version, data = _current(conn, agent)
        if request.method == "POST":
            form = request.form
            action = form.get("action", "")
            if action not in NOTES:
                abort(400, description="No entendimos qué querías guardar.")
            try:
                if _number(form.get("base")) != version:
                    error, status = CONFLICT, 409
                else:
                    new = _apply(data, action, form)
                    if same_content(new, data):
                        flash("No hubo cambios: nada que guardar.")
                    else:
                        saved = faq_versions.save(conn, state().desk.redis, agent.tenant_id, new, origin="console",
                                                  created_by=agent.id, note=NOTES[action])
                        log.info("faq saved", extra={"tenant_id": agent.tenant_id, "version": saved})
                        flash(f"Guardado. El asistente ya responde con la versión {saved}.")
                    return redirect(url_for(".faq_page"))
            except KeyError:
                abort(404, description="No encontramos esa pregunta.")
            except FaqFormError as exc:
                error, status = str(exc), 400
                editing = {"add": "new", "policies": "policies"}.get(action) or form.get("entry")
        history = _history(conn, agent.tenant_id)
    tried = " ".join(request.args.get("probar", "").split())[:300]
    return render_template(
        "console/faq.html", data=data, version=version, history=history, error=error, editing=editing,
        form=request.form if error else {}, fields=faq_editing.POLICY_FIELDS,
        policy_value=faq_editing.policy_value, tried=tried, preview=_preview(data, tried) if tried else None), status


def _preview(data: FaqData, text: str) -> dict[str, Any]:
    """How the bot would answer `text` with this FAQ when it cannot place the message otherwise: the entry it
    picks and what the customer reads (the first part and "¿Quieres más detalles?" for a long answer)."""
    entry = faq.entry_for(data, text)
    if entry is None:
        return {"entry": None, "bubbles": []}
    bubbles = [{"body": m.body, "buttons": [c.title for c in m.buttons] if isinstance(m, Buttons) else []}
               for m in faq.short_answer(entry.answer, f"faq:{entry.id}") if isinstance(m, Text | Buttons)]
    return {"entry": entry, "bubbles": bubbles}


def _apply(data: FaqData, action: str, form: Any) -> FaqData:
    if action == "add":
        return faq_editing.add_entry(data, form.get("question", ""), form.get("answer", ""), form.get("keywords", ""))
    if action == "edit":
        return faq_editing.edit_entry(data, form.get("entry", ""), form.get("question", ""),
                                      form.get("answer", ""), form.get("keywords", ""))
    if action == "delete":
        return faq_editing.delete_entry(data, form.get("entry", ""))
    return faq_editing.set_policies(data, {f.key: form.get(f.key, "") for f in faq_editing.POLICY_FIELDS})


@bp.get("/faq/versions/<int:version_id>")
@auth.login_required
def faq_version_page(version_id: int) -> Any:
    """One version as it was: its entries and policies, what it changed, and "Restaurar"."""
    agent = _admin()
    with get_pool().connection() as conn:
        found = faq_versions.by_id(conn, agent.tenant_id, version_id)
        if found is None:
            abort(404, description="No encontramos esa versión.")
        before = faq_versions.previous(conn, agent.tenant_id, found.version)
        latest = faq_versions.current(conn, agent.tenant_id)
        zone = _zone(conn, agent.tenant_id)
    return render_template(
        "console/faq_version.html", found=found, when=_when(found.created_at, zone),
        changed=changes(before.data if before else None, found.data),
        is_current=latest is not None and latest.id == found.id, fields=faq_editing.POLICY_FIELDS,
        policy_value=faq_editing.policy_value, labels=faq_editing.POLICY_LABELS)


@bp.post("/faq/versions/<int:version_id>/restore")
@auth.login_required
def faq_restore(version_id: int) -> Any:
    """A new version with the content of an earlier one (the versions in between stay in the history)."""
    agent = _admin()
    with get_pool().connection() as conn:
        found = faq_versions.by_id(conn, agent.tenant_id, version_id)
        if found is None:
            abort(404, description="No encontramos esa versión.")
        latest = faq_versions.current(conn, agent.tenant_id)
        if latest is not None and same_content(latest.data, found.data):
            flash(f"La versión {found.version} es igual a la actual: nada que restaurar.")
        else:
            saved = faq_versions.save(conn, state().desk.redis, agent.tenant_id, found.data, origin="restore",
                                      created_by=agent.id, note=f"Restauró la versión {found.version}")
            log.info("faq restored", extra={"tenant_id": agent.tenant_id, "version": saved})
            flash(f"Versión {found.version} restaurada como versión {saved}. El asistente ya responde con ella.")
    return redirect(url_for(".faq_page"))


def _history(conn: Connection[Any], tenant_id: int) -> list[dict[str, Any]]:
    """The versions, newest first, each with who, when and what it changed against the one before."""
    versions = faq_versions.history(conn, tenant_id, faq_versions.HISTORY_MAX + 1)
    zone = _zone(conn, tenant_id)
    shown = []
    for index, found in enumerate(versions[:faq_versions.HISTORY_MAX]):
        before = versions[index + 1] if index + 1 < len(versions) else None
        who = found.author or ("Archivo inicial" if found.origin == "file" else "Un agente que ya no está")
        shown.append({"found": found, "who": who, "when": _when(found.created_at, zone), "current": index == 0,
                      "changed": changes(before.data if before else None, found.data),
                      "labels": faq_editing.POLICY_LABELS})
    return shown


def _number(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def _zone(conn: Connection[Any], tenant_id: int) -> ZoneInfo:
    row: Any = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    try:
        return ZoneInfo(row["timezone"]) if row else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _when(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%d/%m/%Y %H:%M")

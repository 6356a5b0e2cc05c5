"""Package tracking with the information levels of design 9.1.3.

Anyone with the code sees the status (with its time), the origin and
destination cities and point names, the ETA and the history. Names, amounts
to collect and refunds only go to the sender's or recipient's own phone
(`Package.is_party`); a writer without a phone (username-only) is a stranger.
The package is read live from the core on every call: never cached.
`track` turns core failures into its `core_unavailable` outcome. Searching
without a code is `services.lookup`'s job; `package_choices` renders
only the writer's own packages. Reply ids: `nf_retry`, `nf_search`,
`nf_human` (not found), `pkg:<code>` (a package picked from a list),
`pin:<point_id>` / `pin_no` (map pin offer).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from channels.outbound import Buttons, Choice, ChoiceList, OutboundMessage, Text
from core_api_client import CoreBadRequest, CoreError, CoreUnavailable, HistoryEntry, Package, ServicePoint
from services import (
    ServiceContext,
    business,
    catalog,
    clock,
    core_unavailable_replies,
    faq,
    money,
    relative_day,
    stamp,
    wording,
)
from services.normalize import fold_words

logger = logging.getLogger(__name__)

ARRIVED, DELIVERED = "ARRIVED_AT_DESTINATION", "DELIVERED"
_DONE = frozenset({ARRIVED, DELIVERED, "RETURNED_TO_SENDER", "CANCELLED"})
HISTORY_MAX, CHOICES_MAX, CODE_ECHO_MAX = 6, 10, 30


@dataclass(frozen=True)
class TrackingAnswer:
    replies: list[OutboundMessage]
    package: Package | None
    outcome: str  # "found" | "not_found" | "core_unavailable"
    full_access: bool  # the writer is the sender or recipient and saw everything


def phone_digits(phone: str | None) -> str:
    """The digits of a phone number, with El Salvador's 503 added to a bare 8-digit number."""
    digits = re.sub(r"\D", "", phone or "")
    return "503" + digits if len(digits) == 8 else digits


def _roles(package: Package, writer_phone: str | None) -> tuple[bool, bool]:
    """(is sender, is recipient); both False for strangers and writers without a phone."""
    if not writer_phone or not package.is_party(writer_phone):
        return False, False
    mine = phone_digits(writer_phone)
    return phone_digits(package.sender.phone) == mine, phone_digits(package.recipient.phone) == mine


def _points(ctx: ServiceContext) -> dict[str, ServicePoint]:
    """Service points for naming places; empty when the core cannot list them (codes are shown instead)."""
    try:
        return catalog.points_by_id(ctx)
    except CoreError as exc:
        logger.warning("points unavailable while tracking (%s)", type(exc).__name__)
        return {}


class _View:
    """One package as words: cities, point names and statuses."""

    def __init__(self, ctx: ServiceContext, package: Package, points: dict[str, ServicePoint] | None = None) -> None:
        self.ctx, self.package = ctx, package
        self.points = _points(ctx) if points is None else points
        self.origin = self.points.get(package.origin_point)
        self.destination = self.points.get(package.destination_point)
        self.origin_city = package.origin_city or (self.origin.city if self.origin else package.origin_point)
        self.destination_city = package.destination_city or (
            self.destination.city if self.destination else package.destination_point
        )

    def status(self, code: str, form: str = "long") -> str:
        w = wording()
        template = w["statuses"].get(code) or w["status_other"]
        return str(template[form]).format(origin=self.origin_city, destination=self.destination_city, code=code)

    def since(self) -> str:
        """The time of the entry that set the current status (the core's own time)."""
        entries = [h for h in self.package.history if h.status == self.package.status] or list(self.package.history)
        return stamp(self.ctx, entries[-1].at) if entries else ""

    def status_line(self, form: str = "long") -> str:
        since = self.since()
        return self.status(self.package.status, form) + (f" ({since})" if since else "")

    def note(self, entry: HistoryEntry, private: bool) -> str:
        """The core's note, or the status in words when empty or when it names a party for a stranger."""
        folded = fold_words(entry.note)
        names = {t for p in (self.package.sender, self.package.recipient) for t in fold_words(p.name).split()}
        if not folded or (private and any(len(t) > 2 and t in folded.split() for t in names)):
            return self.status(entry.status)
        return entry.note


def _place(city: str, point: ServicePoint | None, point_id: str) -> str:
    return str(wording()["track"]["place"]).format(city=city, point=point.name if point else point_id)


def _eta(view: _View, key: str = "eta") -> str | None:
    """The core's estimated arrival in words ("hoy, 5:00pm") while the package is still on its way."""
    eta = view.package.eta
    if eta is None or view.package.status in _DONE:
        return None
    local = eta.astimezone(view.ctx.timezone)
    return str(wording()["track"][key]).format(day=relative_day(view.ctx, local), time=clock(local.time()))


def _summary(view: _View, sender: bool, recipient: bool) -> str:
    w, p = wording()["track"], view.package
    lines = [w["header"].format(code=p.tracking_code, status=view.status_line()), ""]
    lines.append(w["origin"].format(place=_place(view.origin_city, view.origin, p.origin_point)))
    lines.append(w["destination"].format(
        place=_place(view.destination_city, view.destination, p.destination_point)))
    lines += [line] if (line := _eta(view)) else []
    if sender or recipient:
        lines += [w["sender"].format(name=p.sender.name), w["recipient"].format(name=p.recipient.name)]
        if p.amount_to_collect > 0 and p.status != DELIVERED and not (recipient and p.status == ARRIVED):
            lines.append(w["collect_sender" if sender else "collect_recipient"].format(
                amount=money(p.amount_to_collect)))
        if p.refund is not None and sender and not (p.status == DELIVERED and p.refund.status == "AVAILABLE"):
            state = wording()["refund_statuses"].get(p.refund.status, p.refund.status)
            lines.append(w["refund_line"].format(amount=money(p.refund.amount), status=state))
    history = [w["history_line"].format(stamp=stamp(view.ctx, h.at), note=view.note(h, not (sender or recipient)))
               for h in p.history[-HISTORY_MAX:]]
    lines += ["", w["history_title"], *history] if history else []
    if not (sender or recipient):
        lines += ["", w["stranger_note"]]
    return "\n".join(lines)


def _policy(ctx: ServiceContext, key: str) -> list[str]:
    """One short line of the company's policies (faq_data), or nothing when the tenant has none."""
    try:
        line = faq.policy_line(ctx, key)
    except faq.FaqDataError as exc:
        logger.error("faq data unusable for tenant %s: %s", ctx.tenant_slug, exc)
        return []
    return [line] if line else []


def _point_block(ctx: ServiceContext, point: ServicePoint) -> list[str]:
    w = wording()["track"]
    return [w["point_address"].format(address=point.address, reference=point.reference),
            w["point_hours"].format(hours=" · ".join(business.hours_lines(point.hours))),
            business.open_status(ctx, point.hours)]


def _role_replies(ctx: ServiceContext, view: _View, sender: bool, recipient: bool) -> list[OutboundMessage]:
    """What the package's own people need next: where to pick it up, or their refund."""
    w, p = wording()["track"], view.package
    replies: list[OutboundMessage] = []
    if recipient and p.status == ARRIVED and view.destination is not None:
        lines = [w["pickup_title"].format(point=view.destination.name), *_point_block(ctx, view.destination)]
        lines += [w["amount_to_pay"].format(amount=money(p.amount_to_collect))] if p.amount_to_collect > 0 else []
        lines += _policy(ctx, "pickup")
        replies.append(business.pin_offer(view.destination.id, "\n".join(lines)))
    refund = p.refund
    if sender and p.status == DELIVERED and refund is not None and refund.status == "AVAILABLE":
        point = view.points.get(refund.pickup_point or p.origin_point)
        lines = [w["refund_title"], w["refund_amount"].format(amount=money(refund.amount))]
        if point is not None:
            lines += [w["refund_where"].format(point=point.name), *_point_block(ctx, point)[:2]]
        lines += [w["refund_requirement"].format(requirement=r) for r in _policy(ctx, "refund_requirement")]
        replies.append(business.pin_offer(point.id, "\n".join(lines)) if point else Text("\n".join(lines)))
    return replies


def not_found_replies(code: str, *, partial: bool = False) -> list[OutboundMessage]:
    """Design 2.3.1: the code format, then retry / search by name or phone / talk to a person. `partial`: the
    start of a code short of digits, whose rest may come in the next message (chatbot/dialog/tracking.py)."""
    w = wording()["not_found"]
    buttons = (Choice("nf_retry", w["retry"]), Choice("nf_search", w["search"]), Choice("nf_human", w["human"]))
    shown = business.fit(code.strip(), CODE_ECHO_MAX) or "?"
    return [Buttons(body=w["partial" if partial else "body"].format(code=shown), buttons=buttons)]


def exists(ctx: ServiceContext, code: str) -> bool:
    """Whether the core knows a package with this code (to ask "¿Tu código es …?" only about real ones).
    A code the core refuses does not exist; the core being down raises (CoreError), as for `track`."""
    try:
        return ctx.core.track(code) is not None
    except CoreBadRequest:
        return False


def track(ctx: ServiceContext, code: str, writer_phone: str | None) -> TrackingAnswer:
    """The package's answer at the writer's information level; outcome found / not_found / core_unavailable."""
    try:
        package = ctx.core.track(code)
    except CoreUnavailable:
        return TrackingAnswer(core_unavailable_replies(), None, "core_unavailable", False)
    except CoreBadRequest:  # the core refused the code itself: for the customer, no such package
        return TrackingAnswer(not_found_replies(code), None, "not_found", False)
    except CoreError as exc:  # misconfiguration or a malformed answer: same words for the customer
        logger.error("tracking failed: %s", exc)
        return TrackingAnswer(core_unavailable_replies(), None, "core_unavailable", False)
    if package is None:
        return TrackingAnswer(not_found_replies(code), None, "not_found", False)
    sender, recipient = _roles(package, writer_phone)
    view = _View(ctx, package)
    replies: list[OutboundMessage] = [Text(_summary(view, sender, recipient))]
    return TrackingAnswer(replies + _role_replies(ctx, view, sender, recipient), package, "found",
                          sender or recipient)


def package_choices(ctx: ServiceContext, packages: list[Package], writer_phone: str | None) -> list[OutboundMessage]:
    """The writer's own packages as a numbered list (rows `pkg:<code>`), with the other party's name.

    A list hands out tracking codes, and a code is the credential: packages the writer is not the sender
    or recipient of are left out whatever the caller passed. Searches go through `services.lookup`.
    """
    w = wording()["choices"]
    packages = [p for p in packages if any(_roles(p, writer_phone))]
    if not packages:
        return [Text(w["none"])]
    shown, lines, rows, points = packages[:CHOICES_MAX], [], [], _points(ctx)
    for n, package in enumerate(shown, 1):
        view, (sender, _recipient) = _View(ctx, package, points), _roles(package, writer_phone)
        status = view.status(package.status, "short")
        lines.append(w["line"].format(n=n, code=package.tracking_code, destination=view.destination_city,
                                      status=view.status_line("short")))
        lines.append(w["to"].format(name=package.recipient.name) if sender else w["from"].format(
            name=package.sender.name))
        description = business.fit(w["description"].format(destination=view.destination_city, status=status), 72)
        rows.append(Choice(f"pkg:{package.tracking_code}", package.tracking_code[:24], description))
    intro = w["intro"].format(count=len(packages)) if len(packages) > 1 else w["intro_one"]
    more = [w["more"].format(shown=len(shown))] if len(packages) > len(shown) else []
    body = "\n".join([intro, *more, "", *lines, "", w["ask"]])
    return [ChoiceList(body=body, button_label=w["button"], rows=tuple(rows))]


def pickup_answer(ctx: ServiceContext, package: Package, writer_phone: str | None) -> list[OutboundMessage]:
    """When the package can be picked up: the destination point's hours today and tomorrow, open now or not.

    The point is public company information, so every writer gets it; `writer_phone` adds the amount to pay
    for the package's own recipient.
    """
    w, view = wording()["pickup"], _View(ctx, package)
    point = view.destination
    if package.status == DELIVERED:
        return [Text(w["delivered"].format(code=package.tracking_code, since=view.since()))]
    if point is None:
        return [Text(w["no_point"].format(status=view.status_line()))]
    today = ctx.local_now.date()
    lines = [w["title"].format(point=point.name), point.address, "",
             business.day_status(ctx, point.hours, today),
             business.day_status(ctx, point.hours, today + timedelta(days=1)),
             business.open_status(ctx, point.hours)]
    _sender, recipient = _roles(package, writer_phone)
    if recipient and package.amount_to_collect > 0 and package.status != DELIVERED:
        lines.append(wording()["track"]["amount_to_pay"].format(amount=money(package.amount_to_collect)))
    if package.status != ARRIVED:
        lines = [w["not_ready"].format(code=package.tracking_code, status=view.status_line()), "", *lines]
    return [business.pin_offer(point.id, "\n".join(lines))]


def eta_answer(ctx: ServiceContext, packages: list[Package], writer_phone: str | None) -> list[OutboundMessage]:
    """One line per package: its status with time, and the core's ETA while on the way.

    Nothing restricted is shown, so `writer_phone` changes nothing here (kept for a uniform signature).
    """
    w = wording()["eta"]
    if not packages:
        return [Text(wording()["choices"]["none"])]
    lines, points = [w["intro"]], _points(ctx)
    for package in packages:
        view = _View(ctx, package, points)
        eta = _eta(view, "eta_short")
        lines.append(w["line"].format(code=package.tracking_code, destination=view.destination_city,
                                      status=view.status_line("short")) + (f" · {eta}" if eta else ""))
    return [Text("\n".join(lines))]


def roles(package: Package, writer_phone: str | None) -> tuple[bool, bool]:
    """(is sender, is recipient) of the package for the number the customer writes from."""
    return _roles(package, writer_phone)


def is_open(package: Package) -> bool:
    """Still on its way or waiting to be picked up: not delivered, returned or cancelled."""
    return package.status not in (_DONE - {ARRIVED})


def amount_due_answer(ctx: ServiceContext, packages: list[Package], writer_phone: str | None) -> list[OutboundMessage]:
    """"¿Cuánto tengo que pagar?" from a recipient: what each of their open packages costs to pick up.

    Only packages the writer receives count (the amount is restricted information, design 9.1.3); an
    empty list when there are none, so the caller answers the question another way (a shipping quote).
    """
    mine = [p for p in packages if _roles(p, writer_phone)[1] and is_open(p)]
    if not mine:
        return []
    w, points = wording()["amount_due"], _points(ctx)
    if len(mine) == 1:
        package = mine[0]
        view = _View(ctx, package, points)
        point = view.destination.name if view.destination else view.destination_city
        values = {"code": package.tracking_code, "sender": package.sender.name, "point": point,
                  "amount": money(package.amount_to_collect)}
        lines = [str(w["one" if package.amount_to_collect > 0 else "one_free"]).format(**values)]
        if package.status != ARRIVED:
            lines.append(str(w["not_ready"]).format(status=view.status_line("short")))
        return [Text("\n".join(lines))]
    lines = [w["intro"]]
    for package in mine[:CHOICES_MAX]:
        key = "line" if package.amount_to_collect > 0 else "line_free"
        lines.append(str(w[key]).format(code=package.tracking_code, sender=package.sender.name,
                                        amount=money(package.amount_to_collect),
                                        status=_View(ctx, package, points).status(package.status, "short").lower()))
    return [Text("\n".join([*lines, "", w["where"]]))]


def amount_due_other_answer(ctx: ServiceContext, packages: list[Package], writer_phone: str | None
                            ) -> list[OutboundMessage]:
    """"¿Cuánto hay que pagar?" about a package the writer does not receive: its sender learns what the
    recipient pays; anyone else, that the amount is shown only to the registered phones (design 9.1.3)."""
    w = wording()["amount_due"]
    package = packages[-1]
    sender, _recipient = _roles(package, writer_phone)
    if not sender:
        return [Text(str(w["private"]))]
    key = "sender" if package.amount_to_collect > 0 else "sender_free"
    key = "sender_paid" if key == "sender" and package.status == DELIVERED else key
    return [Text(str(w[key]).format(code=package.tracking_code, name=package.recipient.name,
                                    amount=money(package.amount_to_collect)))]

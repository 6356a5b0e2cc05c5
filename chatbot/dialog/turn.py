"""One customer message being answered: what the dialog's handlers read and what they produce.

A `Turn` carries the router's result, the cleaned text, the session state
(mutated in place by the handlers), the services' context and the customer;
handlers append replies and may set an escalation, an opt-out change and
analytics events. The wording comes from services/texts/dialog.yaml.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.outbound import Buttons, Choice, ChoiceList, OutboundMessage, Text
from chatbot.cues import cues_in
from chatbot.guard import CleanText
from chatbot.routing import Route
from core_api_client import Company, CoreError
from services import ServiceContext, business, catalog, geography, texts
from services.business import HoursSpec
from services.escalation import EscalationDecision
from services.normalize import fold_words
from storage.dialogs import DialogState

log = logging.getLogger(__name__)

TEXTS_NAME = "dialog"
_WEIGHT = re.compile(r"(\d+(?:[.,]\d+)?)")


class State(enum.StrEnum):
    """The dialog's named states (chatbot/dialog/machine.mmd draws them with their transitions)."""

    IDLE = "idle"
    AWAITING_CODE = "awaiting_tracking_code"
    AWAITING_CODE_CONFIRM = "awaiting_code_confirmation"
    AWAITING_PACKAGE_CHOICE = "awaiting_package_choice"
    AWAITING_NOT_FOUND_CHOICE = "awaiting_not_found_choice"
    AWAITING_POINT = "awaiting_point_choice"
    AWAITING_NAME = "awaiting_search_name"
    AWAITING_WEIGHT = "awaiting_weight"
    AWAITING_PIN = "awaiting_pin_answer"
    AWAITING_COMPLAINT_CHECK = "awaiting_complaint_check"
    AWAITING_HUMAN_CONFIRM = "awaiting_human_confirmation"
    AWAITING_RESUME = "awaiting_resume_answer"
    AWAITING_CSAT = "awaiting_csat"
    IN_HANDOFF = "in_handoff"


def state_of(ds: DialogState) -> State:
    """The session's state as a `State` (an unknown name, e.g. from an older version, is IDLE)."""
    try:
        return State(ds.state)
    except ValueError:
        return State.IDLE


def wording() -> dict[str, Any]:
    """The dialog's customer-facing text (services/texts/dialog.yaml, loaded once per process)."""
    return texts.load(TEXTS_NAME)


@dataclass(frozen=True)
class Customer:
    """Who wrote: the phone WhatsApp gave (None for username-only customers) and what we know of them."""

    phone: str | None
    first_name: str | None  # from the WhatsApp profile, already checked to be a plain name
    is_new: bool  # first message ever from this customer
    opted_out: bool


@dataclass(frozen=True)
class Situation:
    """The conversation as the database sees it when the message arrives."""

    conversation_id: int
    status: str  # bot | escalated | agent | closed
    open_case: str | None = None  # case number of the escalation it waits on, if any


@dataclass
class Turn:
    route: Route
    clean: CleanText
    reply_id: str | None
    ds: DialogState
    ctx: ServiceContext
    customer: Customer
    situation: Situation
    repeats: int = 0
    replies: list[OutboundMessage] = field(default_factory=list)
    escalation: EscalationDecision | None = None
    opt_out: bool | None = None  # True: opted out now; False: opted in again
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    understood: bool = True
    topic: str | None = None  # what was answered, remembered as the last intent
    silent: bool = False  # nothing is said on purpose (with a human, or already told)
    # a grounded model answer (chatbot.llm) for a message the rules cannot place; None: rules only
    free_answer: Callable[[Turn], State | None] | None = None
    _company: Company | None = None
    _company_loaded: bool = False
    _cues: frozenset[str] | None = None

    # -- what the message says ------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.clean.text

    @property
    def folded(self) -> str:
        """Lower case, no accents, punctuation as spaces: what keyword checks read."""
        return fold_words(self.clean.text)

    @property
    def intent(self) -> str:
        return self.route.intent

    @property
    def choice(self) -> str | None:
        """The id of the option this message picks: a tapped button/row, or a typed number or title."""
        return self.route.option_id or self.reply_id

    @property
    def code(self) -> str | None:
        value = self.route.entities.get("tracking_code")
        return str(value) if value else None

    @property
    def point(self) -> str | None:
        value = self.route.entities.get("point")
        return str(value) if value else None

    @property
    def place(self) -> str | None:
        """A place of El Salvador that is not one point ("dep:usulutan", "dis:apopa"; services/geography.py)."""
        value = self.route.entities.get("place")
        return str(value) if value else None

    @property
    def place_name(self) -> str | None:
        """The place's name as customers know it ("Usulután"), for the services that read place names."""
        found = geography.locality(self.place)
        return found.name if found else None

    @property
    def within(self) -> bool:
        """"Dentro de San Salvador": the shipment starts and ends in the place named."""
        return bool(self.route.entities.get("within"))

    @property
    def day(self) -> str | None:
        value = self.route.entities.get("day")
        return str(value) if value else None

    @property
    def weight(self) -> float | None:
        value = self.route.entities.get("weight_lbs")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def bare_number(self) -> float | None:
        """A number typed alone or with a unit ("8", "como 8 libras"), for answers to "¿cuánto pesa?"."""
        match = _WEIGHT.search(self.text)
        if match is None or len(self.text) > 40:
            return None
        try:
            return float(match.group(1).replace(",", "."))
        except ValueError:
            return None

    def cue(self, *names: str) -> bool:
        """Whether the message carries any of these cues (chatbot/cues.py; the phrases are in the lexicon)."""
        return not self.cues.isdisjoint(names)

    @property
    def cues(self) -> frozenset[str]:
        """The message's cues, read once and only when a rule asks."""
        if self._cues is None:
            self._cues = cues_in(self.clean.text)
        return self._cues

    @property
    def ts(self) -> float:
        return self.ctx.now.timestamp()

    # -- what the bot says ------------------------------------------------------------------------

    def say(self, key: str, **values: Any) -> None:
        self.replies.append(Text(self.line(key, **values)))

    def say_text(self, body: str) -> None:
        self.replies.append(Text(body))

    def line(self, key: str, **values: Any) -> str:
        node: Any = wording()
        for part in key.split("."):
            node = node[part]
        return str(node).format(**values) if values else str(node)

    def buttons(self, body: str, *choices: tuple[str, str]) -> None:
        self.replies.append(Buttons(body=body, buttons=tuple(Choice(i, t) for i, t in choices)))

    def menu(self, prompt: str | None = None) -> None:
        """The main menu as a list (rows `menu_*`)."""
        w = wording()
        rows = tuple(Choice(o["id"], o["title"], o.get("description")) for o in w["menu_options"])
        self.replies.append(ChoiceList(body=prompt or w["menu_prompt"], button_label=w["menu_button"], rows=rows))

    def solved(self, item: str, **values: Any) -> None:
        """Remember what was answered, for the summary of a long conversation."""
        label = self.line(f"summary.items.{item}", **values)
        if label not in self.ds.solved:
            self.ds.solved.append(label)
            del self.ds.solved[:-8]

    def event(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))

    def company(self) -> Company | None:
        """The company's support hours and emergency phone from the core (None when it cannot answer)."""
        if not self._company_loaded:
            self._company_loaded = True
            try:
                self._company = catalog.company(self.ctx)
            except CoreError as exc:
                log.warning("company data unavailable: %s", type(exc).__name__)
        return self._company

    def support_hours(self) -> HoursSpec | None:
        """The support team's hours: the company's own when its admin set them (no core call), else its core's;
        its holidays closed. None when neither can say."""
        if self.ctx.support_hours is not None:
            return business.support_hours(self.ctx, None)
        company = self.company()
        return business.support_hours(self.ctx, company.support_hours if company else None)

    def customer_name(self) -> str | None:
        name = self.ds.search.get("name")
        return str(name) if name else self.customer.first_name

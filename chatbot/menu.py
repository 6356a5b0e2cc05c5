"""The first responder: greets, shows the main menu, and answers what it cannot read yet.

It stands in for the full conversation engine (router + dialog manager) and
already speaks through the real path: it returns provider-neutral messages
that the worker stores and sends. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.events import InboundMessage, MessageKind
from channels.outbound import Choice, ChoiceList, OutboundMessage, Text
from chatbot import texts


@dataclass(frozen=True)
class Customer:
    profile_name: str | None
    is_new: bool


def reply_to(message: InboundMessage, customer: Customer, company: str) -> list[OutboundMessage]:
    """The bot's replies to one customer message (possibly none, e.g. for a reaction)."""
    t = texts.load()
    if message.kind is MessageKind.REACTION or message.kind is MessageKind.SYSTEM:
        return []
    if message.kind is MessageKind.MEDIA:
        media = t["media_names"].get(message.media_type or "", "archivo")
        return [Text(t["media_received"].format(media=media))]
    if message.kind is MessageKind.LOCATION:
        return [Text(t["location_received"])]
    if message.kind in (MessageKind.UNSUPPORTED, MessageKind.UNKNOWN):
        return [Text(t["unsupported"])]
    if message.reply_id and message.reply_id.startswith("menu_"):
        titles = {o["id"]: o["title"] for o in t["menu_options"]}
        choice = titles.get(message.reply_id, message.reply_title or "")
        return [Text(t["option_chosen"].format(choice=choice))]
    first_name = (customer.profile_name or "").split(" ")[0].strip()
    name_part = f", {first_name}" if first_name and len(first_name) <= 20 else ""
    greeting = (t["welcome_first"] if customer.is_new else t["welcome_again"]).format(
        company=company, name_part=name_part
    )
    return [Text(greeting), main_menu()]


def main_menu() -> ChoiceList:
    t = texts.load()
    rows = tuple(Choice(o["id"], o["title"], o.get("description")) for o in t["menu_options"])
    return ChoiceList(body=t["menu_prompt"], button_label=t["menu_button"], rows=rows)

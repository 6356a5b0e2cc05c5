"""Finding packages without a tracking code: the one place that decides what such a search may show.

Design 9.1: the tracking code is the credential for basic information (status,
cities, history), and the WhatsApp number the customer writes from, when it is
a package's registered sender or recipient phone, is the proof for everything
else. A name, or a phone number typed into the chat, proves nothing, and a list
that shows codes hands out the credential. So, without a code:

- `own_packages`: the writer's own packages, searched by the number WhatsApp
  says they write from (`writer_phone`, never a number from the text or from a
  model). A writer without a phone (username-only) has none.
- `confirm_by_name`: a writer whose number matches nothing may give the
  recipient's full name and the destination point (design 2.1.2). The answer at
  most confirms that such a package is waiting to be collected there: no code,
  status, history or other package. It says how to get the code (ask the
  sender, or write from the registered phone) and offers a person.
- `typed_phone_replies`: the honest answer when a phone number is typed as if
  it were a key.

The dialog rules and the LLM tools search through these functions only;
nothing else asks the core to search. Reply ids: `pkg:<code>` (one of the
writer's own packages), `nf_retry` (I have the code), `nf_name` (another name),
`nf_human` (a person). Failure policy: core failures raise `CoreError` to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.outbound import Buttons, Choice, OutboundMessage, Text
from core_api_client import Package
from services import ServiceContext, catalog, tracking, wording
from services.normalize import fold_words

# Packages no longer waiting for anyone: a name never confirms these.
_COLLECTED = frozenset({tracking.DELIVERED, "RETURNED_TO_SENDER", "CANCELLED"})
MIN_NAME_WORDS = 2  # a first name or a surname alone confirms nothing


@dataclass(frozen=True)
class OwnPackages:
    """The writer's own packages and what to tell them; outcome "listed" | "none" | "no_phone"."""

    packages: list[Package]
    replies: list[OutboundMessage]
    outcome: str

    @property
    def codes(self) -> list[str]:
        """The codes the list showed (the session may remember them: they are the writer's own)."""
        return [p.tracking_code for p in self.packages[: tracking.CHOICES_MAX]]


@dataclass(frozen=True)
class NameAnswer:
    """What a name search may say; outcome "exists" | "none" | "needs_full_name" | "needs_point" | "no_phone"."""

    replies: list[OutboundMessage]
    outcome: str


def own_packages(ctx: ServiceContext, writer_phone: str | None) -> OwnPackages:
    """The packages whose sender or recipient phone is the writer's own number, newest first, as a list.

    Whatever the core answers, only packages the writer is a party of are kept.
    """
    if not writer_phone:
        return OwnPackages([], no_phone_replies(), "no_phone")
    found = [p for p in ctx.core.search(phone=writer_phone) if p.is_party(writer_phone)]
    if not found:
        return OwnPackages([], [Text(wording()["lookup"]["own_none"])], "none")
    return OwnPackages(found, tracking.package_choices(ctx, found, writer_phone), "listed")


def full_name(typed: str) -> str | None:
    """The typed name when it has a first name and a surname (two words of 2+ letters), else None."""
    words = [w for w in fold_words(typed).split() if len(w) >= 2 and w.isalpha()]
    return typed.strip() if len(words) >= MIN_NAME_WORDS else None


def check_name(writer_phone: str | None, typed: str) -> NameAnswer | None:
    """Why a name cannot be searched for this writer (no phone, not a full name); None when it can."""
    if not writer_phone:
        return NameAnswer(no_phone_replies(), "no_phone")
    if full_name(typed) is None:
        return NameAnswer([Text(wording()["lookup"]["full_name"])], "needs_full_name")
    return None


def confirm_by_name(ctx: ServiceContext, writer_phone: str | None, typed: str,
                    destination: str | None) -> NameAnswer:
    """At most "there is a package for <the typed name> to collect at <point>" (design 2.1.2 within 9.1).

    Only the recipient's name counts (the one who collects), every typed word must match a word of it (an
    initial matches the word it abbreviates), and the destination point must be named. The core's names,
    codes and statuses never appear: only the name as typed and the public point.
    """
    refused = check_name(writer_phone, typed)
    if refused is not None:
        return refused
    w = wording()["lookup"]
    point = catalog.point_by_id(ctx, destination)
    if point is None:
        return NameAnswer([_buttons(w["needs_point"], "nf_retry", "nf_human")], "needs_point")
    name = typed.strip()
    waiting = [p for p in ctx.core.search(name=name, destination=point.id)
               if p.destination_point == point.id and p.status not in _COLLECTED
               and _recipient_is(name, p.recipient.name)]
    if not waiting:
        body = w["none"].format(name=name, point=point.name)
        return NameAnswer([_buttons(body, "nf_name", "nf_human", "nf_retry")], "none")
    body = w["exists"].format(name=name, point=point.name, address=point.address)
    return NameAnswer([_buttons(body, "nf_retry", "nf_human")], "exists")


def typed_phone_replies(writer_phone: str | None) -> list[OutboundMessage]:
    """A phone typed into the chat is never a key: what we can show instead, and how to get the code."""
    if not writer_phone:
        return no_phone_replies()
    return [_buttons(wording()["lookup"]["typed_phone"], "nf_retry", "nf_human")]


def is_writers_phone(typed: str | None, writer_phone: str | None) -> bool:
    """Whether a phone typed in the chat is the very number the writer writes from."""
    return bool(typed and writer_phone) and tracking.phone_digits(typed or "") == tracking.phone_digits(writer_phone)


def no_phone_replies() -> list[OutboundMessage]:
    """For a username-only writer (no phone): nothing can be found without a code; how to get one."""
    return [_buttons(wording()["lookup"]["no_phone"], "nf_retry", "nf_human")]


def _recipient_is(typed: str, recipient: str) -> bool:
    """Every typed word is a word of the recipient's name, or an initial of one (and the other way round)."""
    have = fold_words(recipient).split()
    for word in fold_words(typed).split():
        if not any(word == h or (len(h) == 1 and word.startswith(h)) or (len(word) == 1 and h.startswith(word))
                   for h in have):
            return False
    return True


def _buttons(body: str, *ids: str) -> Buttons:
    titles = wording()["lookup"]["buttons"]
    return Buttons(body=body, buttons=tuple(Choice(i, titles[i]) for i in ids))

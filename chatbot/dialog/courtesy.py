"""Courtesies: greetings, the menu, thanks, goodbye and the rating, opting out and in, odd input."""

from __future__ import annotations

from channels.outbound import Choice, ChoiceList
from chatbot import feedback
from chatbot.dialog.turn import State, Turn, wording
from services import business

RATED = "rated:"  # the purpose after the bot's rating: "rated:<score>" until the next message
LISTENING_WORDS = 5  # longer messages that start so carry their own question


def greet(t: Turn, extra: str | None = None) -> State:
    """First contact, returning customer, or a hello in the middle of a session; then the menu.

    `extra` is a line added to the greeting (e.g. "I only speak Spanish" for a first message in English).
    """
    w = wording()
    opener = next((v for cue, v in w["greeting_openers"].items() if t.cue(cue)), w["default_opener"])
    name_part = f", {t.customer.first_name}" if t.customer.first_name else ""
    if t.ds.exchanges == 0:
        if t.customer.is_new:
            key = "welcome_first"
        else:
            key = "welcome_again" if opener == w["default_opener"] else "welcome_again_opener"
        if key == "welcome_first" and t.ctx.greeting:  # the company's own welcome, after the opener
            body = f"{opener}{name_part}! 👋 {t.ctx.greeting}"
        else:
            key = "welcome_first_named" if key == "welcome_first" and t.ctx.bot_name else key
            body = t.line(key, opener=opener, name_part=name_part, company=t.ctx.company_name,
                          bot_name=t.ctx.bot_name)
        hours = t.support_hours()
        if hours and not business.is_open(t.ctx, hours, t.ctx.now):
            body = f"{body}\n\n{w['out_of_hours_note']}"
    else:
        body = t.line("welcome_session", opener=opener, name_part=name_part)
    t.say_text(f"{body}\n\n{extra}" if extra else body)
    t.menu()
    t.topic = "greeting"
    return State.IDLE


def menu_help(t: Turn, key: str = "menu_confused") -> State:
    t.menu(t.line(key))
    t.topic = "menu"
    return State.IDLE


def faq_menu(t: Turn) -> State:
    w = wording()["faq_menu"]
    rows = tuple(Choice(r["id"], r["title"], r.get("description")) for r in w["rows"])
    t.replies.append(ChoiceList(body=w["prompt"], button_label=w["button"], rows=rows))
    t.topic = "menu"
    return State.IDLE


def thanks(t: Turn) -> State:
    t.say("thanks")
    t.ds.pending, t.ds.purpose = None, None
    t.topic = "thanks"
    return State.IDLE


def goodbye(t: Turn) -> State:
    """Farewell (for the night after 6 pm); once per session, when something was solved, a rating."""
    hour = t.ctx.local_now.hour
    t.say("goodbye_night" if hour >= 18 or hour < 5 else "goodbye")
    t.ds.pending, t.ds.purpose = None, None
    t.topic = "goodbye"
    if t.ds.solved and not t.ds.csat_asked:
        w = wording()["csat"]
        t.buttons(w["body"], *((o["id"], o["title"]) for o in w["options"]))
        t.ds.csat_asked = True
        return State.AWAITING_CSAT
    return State.IDLE


def csat(t: Turn, score: int) -> State:
    """The bot's own 1-5 rating; the next message may comment on it (`csat_comment`)."""
    t.event("csat", score=score)
    t.say("csat.thanks")
    t.topic = "csat"
    t.ds.purpose = f"{RATED}{score}"
    return State.IDLE


def csat_comment(t: Turn) -> State | None:
    """The message right after the rating, when it reads as a comment on it (`chatbot.feedback`): a
    `csat_comment` event with the rating's score, in the same conversation as the message that holds the
    words (events never hold text), and thanked once; never a case. None when it is a new request, which
    is then answered as usual."""
    score = (t.ds.purpose or "").removeprefix(RATED)
    t.ds.purpose = None
    if not score.isdigit() or not feedback.reads_as_comment(t.route, t.text):
        return None
    t.event("csat_comment", score=int(score), scale=5)
    t.say("csat.comment_thanks")
    t.topic = "csat_comment"
    return State.IDLE


def opt_out(t: Turn) -> State:
    t.opt_out = True
    t.event("opt_out")
    t.say("opt_out_done", company=t.ctx.company_name)
    t.topic = "opt_out"
    return State.IDLE


def opt_in(t: Turn) -> State:
    if t.customer.opted_out:
        t.opt_out = False
        t.event("opt_in")
        t.say("opt_in_done", company=t.ctx.company_name)
    else:
        t.say("opt_in_already")
    t.topic = "opt_in"
    return State.IDLE


def is_opt_in(t: Turn) -> bool:
    return t.cue("opt_in")


def odd_input(t: Turn) -> State | None:
    """Empty text or only emojis: a short nudge, not counted as a misunderstanding."""
    if t.clean.empty:
        t.say("empty_text")
        return State.IDLE
    if t.clean.emoji_only:
        if t.cue("thanks_emoji"):
            t.say("emoji_thanks")
        else:
            t.say("emoji_only")
            t.menu()
        return State.IDLE
    return None


def listening(t: Turn) -> State | None:
    """"Mire…", "una pregunta": the question is still to come; the bot listens instead of "no entendí"."""
    if not t.cue("preamble") or len(t.folded.split()) > LISTENING_WORDS:
        return None
    t.say("listening")
    t.topic = None
    return State.IDLE

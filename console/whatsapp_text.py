"""WhatsApp's text formatting as an agent sees it in the console: *bold*, _italic_, ~strike~ and ```mono```.

The text is HTML-escaped first and only then are the markers turned into tags, so nothing anyone writes
becomes markup: `<script>` shows as written, and `*<b>x</b>*` is the bold text "<b>x</b>". The only tags in
the result are strong, em, s and code. The rules follow WhatsApp's: a marker opens right before a
non-space character and closes right after one, within one line, and never inside a word (so ids like
`la_union` or sums like `2*3*4` stay as written). Nothing is formatted inside ```mono```, which may span
lines. Newlines are kept as they are (the page shows them with `white-space: pre-wrap`).
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_MONO = re.compile(r"```(.+?)```", re.DOTALL)
_HOLE = re.compile(r"\x00(\d+)\x00")


def _span(marker: str) -> re.Pattern[str]:
    m = re.escape(marker)
    # Outside: not touching a letter or digit. Inside: starts and ends with a non-space, one line.
    return re.compile(rf"(?<![^\W_]){m}(?=[^\s{m}])([^\n]*?[^\s{m}]|[^\s{m}]){m}(?![^\W_])")


_SPANS = ((_span("*"), "strong"), (_span("_"), "em"), (_span("~"), "s"))


def to_html(text: str) -> Markup:
    """The text as safe HTML with WhatsApp's formatting rendered."""
    mono: list[str] = []

    def hold(match: re.Match[str]) -> str:
        mono.append(match.group(1))
        return f"\x00{len(mono) - 1}\x00"

    html = str(escape(text.replace("\x00", "")))
    html = _MONO.sub(hold, html)
    for pattern, tag in _SPANS:
        html = pattern.sub(rf"<{tag}>\1</{tag}>", html)
    html = _HOLE.sub(lambda match: f"<code>{mono[int(match.group(1))]}</code>", html)
    return Markup(html)  # noqa: S704 - escaped above; only our own four tags were added

"""What the browser tests share: the Chromium they drive, and the screenshots they leave in docs/.

The system's Chromium (`python -m scripts.devservices --browser` installs it; browser tests never use
`playwright install`). A missing Chromium fails the test, naming the fix, instead of skipping it.
Screenshots are written to docs/ when missing, or all again with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def launch(pw: Any) -> Any:
    """A headless Chromium from a running `sync_playwright()`; the caller closes it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `python -m scripts.devservices --browser` "
                    "(apt-get install -y chromium); browser tests never use `playwright install`")
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def screenshot(page: Any, name: str, *, full_page: bool = False, clip_to: str | None = None) -> None:
    """docs/<name>: the viewport, the whole page, or the page from its top to the end of the element `clip_to`."""
    target = ROOT / "docs" / name
    if target.exists() and os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    target.parent.mkdir(exist_ok=True)
    if clip_to is None:
        page.screenshot(path=str(target), full_page=full_page)
        return
    page.evaluate("window.scrollTo(0, 0)")
    bottom = page.evaluate("(selector) => document.querySelector(selector).getBoundingClientRect().bottom"
                           " + window.scrollY + 12", clip_to)
    width = page.viewport_size["width"]
    page.screenshot(path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": bottom})

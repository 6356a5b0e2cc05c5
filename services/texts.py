"""Loads the customer-facing text of the assistant from services/texts/*.yaml (editable without code)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEXTS_DIR = Path(__file__).resolve().parent / "texts"


@cache
def load(name: str) -> dict[str, Any]:
    """The texts of one part of the bot: `dialog` (conversation) or `services` (answers from data)."""
    data: dict[str, Any] = yaml.safe_load((TEXTS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return data

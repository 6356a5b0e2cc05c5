"""Loads the customer-facing text of the assistant from chatbot/texts/*.yaml (editable without code)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEXTS_DIR = Path(__file__).resolve().parent / "texts"


@cache
def load(locale: str = "es_sv") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((TEXTS_DIR / f"{locale}.yaml").read_text(encoding="utf-8"))
    return data

"""The wording of the queue, search, assignment and tags (console/team_texts.yaml), loaded once."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEXTS_PATH = Path(__file__).resolve().parent / "team_texts.yaml"


@cache
def wording() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TEXTS_PATH.read_text(encoding="utf-8"))
    return data


def text(section: str, key: str, **values: Any) -> str:
    """One sentence of `section`, with its {placeholders} filled; an unknown key shows as itself."""
    found = wording()[section].get(key)
    return key if found is None else str(found).format(**values)

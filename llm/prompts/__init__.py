"""Versioned prompt templates: `<name>.v<N>.txt` in this directory, the highest N in use.

Templates use `$name` placeholders (string.Template) filled with the
company's data from the core and its FAQ and policies at call time; no company fact is
written in a template. `Prompt.version` ("answer.v1") is stored on every
model call, so a change of wording is a new file and shows in the costs and
analyses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

DIRECTORY = Path(__file__).resolve().parent
_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<n>\d+)\.txt$")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str  # "<name>.v<N>"
    template: str

    def render(self, **values: str) -> str:
        """The text with every `$placeholder` filled (a missing value raises KeyError: a bug, not data)."""
        return Template(self.template).substitute(**values)


@functools.cache
def load(name: str) -> Prompt:
    """The newest version of the prompt `name`."""
    found: list[tuple[int, Path]] = []
    for path in DIRECTORY.iterdir():
        match = _FILE.match(path.name)
        if match and match.group("name") == name:
            found.append((int(match.group("n")), path))
    if not found:
        raise FileNotFoundError(f"no prompt template {name}.v<N>.txt in {DIRECTORY}")
    number, path = max(found)
    return Prompt(name, f"{name}.v{number}", path.read_text(encoding="utf-8"))

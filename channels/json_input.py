"""Decoding JSON bodies sent by others (Meta's webhooks, the logistics core's events) without surprises.

`json.loads` alone lets three things through that fail later, far from the
request: nesting thousands of levels deep (RecursionError, in the parser or
in any later `json.dumps` or schema check), integers over Python's digit limit
(a ValueError that is not a JSONDecodeError), and NaN/Infinity literals (not
JSON; PostgreSQL's jsonb refuses them, as it refuses 1e999). `load` turns each into `BadJson` with
a reason, so the caller can answer a 4xx.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Meta's webhooks nest about 8 levels, the core's events 2: anything past this is not a payload of ours.
MAX_DEPTH = 32


class BadJson(ValueError):
    """The body is not JSON we accept; the message says why."""


class TooDeep(BadJson):
    """Lists and objects nest past the allowed depth."""


def load(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON. Raises BadJson for invalid JSON, NaN/Infinity, huge integers or nesting past `max_depth`."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise TooDeep(f"JSON nested too deeply (more than {max_depth} levels)") from None
    except UnicodeDecodeError:
        raise BadJson("body is not valid JSON: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from None
    except ValueError:  # int() past sys.get_int_max_str_digits(), 1e999, or a NaN/Infinity literal
        raise BadJson("body is not valid JSON: a number is too large or not finite") from None
    if nesting_exceeds(value, max_depth):
        raise TooDeep(f"JSON nested too deeply (more than {max_depth} levels)")
    return value


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """True when lists/objects nest deeper than `max_depth` (iterative: no recursion, whatever the depth)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number

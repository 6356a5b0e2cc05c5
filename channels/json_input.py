"""Decoding JSON bodies sent by others (Meta's webhooks, the logistics core's events) without surprises.

`json.loads` alone lets three things through that fail later, far from the
request: nesting thousands of levels deep (RecursionError, in the parser or
in any later `json.dumps` or schema check), integers over Python's digit limit
(a ValueError that is not a JSONDecodeError), and NaN/Infinity literals (not
JSON; PostgreSQL's jsonb refuses them, as it refuses 1e999). `load` turns each into `BadJson` with
a reason, so the caller can answer a 4xx.

`finite_float` and `digits_int` read one number out of a decoded JSON value or a
form field (both webhook parsers use them): anything else than the number asked
for reads as None, never as an exception.
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


def finite_float(value: Any) -> float | None:
    """A finite number from a JSON number or numeric text; None for anything else.

    NaN and infinities are None (they are not coordinates, and jsonb refuses them), as are booleans,
    text that is not a number and an integer too large for a float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def digits_int(value: Any, *, max_digits: int) -> int | None:
    """A count, code or timestamp: a non-negative integer, or text of ASCII digits, of at most `max_digits` digits.

    None for anything else: a sign, spaces, non-ASCII digits ("١٢"), a boolean, a float, or more digits.
    """
    if isinstance(value, str):
        return int(value) if value.isascii() and value.isdigit() and len(value) <= max_digits else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**max_digits:
        return value
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number

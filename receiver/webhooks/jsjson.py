"""JavaScript-exact ``JSON.parse`` / ``JSON.stringify`` for webhook bodies.

Kotani signs ``JSON.stringify({event, data})``. To check that signature on a body whose bytes are
not already that string (other key order, spacing, ``1.50`` for ``1.5``...), the receiver parses
the body and serialises it again exactly as V8 would. ``loads`` keeps each number's source text
(``JSNumber``) so that nothing is lost to Python's int/float; ``dumps`` then prints every value as
ECMAScript does:

- numbers: ``Number(text)`` then Number::toString (ECMA-262 §6.1.6.1.20): the shortest digits
  that round-trip (Python's ``repr(float)`` finds the same ones), plain notation for
  1e-7 < |x| < 1e21, otherwise ``1e+21`` / ``1.5e-7``; ``-0`` prints ``0``; a literal that
  overflows the double range is ``Infinity``, which JSON.stringify prints as ``null``;
- keys (OrdinaryOwnPropertyKeys, §10.1.11.1): array-index keys (``"0"`` .. ``"4294967294"``,
  canonical form) first in ascending numeric order, then the others in insertion order; a
  duplicate key keeps the position of its first occurrence and the value of its last, as
  JSON.parse's CreateDataProperty does (a Python dict built in order behaves the same way);
- strings (QuoteJSONString, §25.5.2.3): only ``"``, ``\\`` and code units below 0x20 are escaped
  (``\\b \\f \\n \\r \\t`` short forms, ``\\u00xx`` lowercase otherwise) plus lone surrogates
  (``\\udxxx``, the well-formed JSON.stringify of ES2019); U+2028/U+2029 stay literal;
- compact separators, no whitespace.

Every malformed input fails as ``InvalidJSON``: nothing else escapes ``loads`` and ``dumps``.
Spec: https://tc39.es/ecma262/#sec-json.stringify
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, Final, NoReturn, TypeAlias

from receiver.errors import InvalidJSON

MAX_DEPTH: Final = 128
"""Nesting deeper than this is refused: Kotani's payloads are a few levels deep."""

_quote: Callable[[str], str] = encode_basestring
"""CPython's C string encoder with ``ensure_ascii=False`` escapes exactly what JS escapes, with
the same short forms and lowercase ``\\u00xx``; only lone surrogates need a second pass."""

_SMALL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})")
_INT_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_ARRAY_INDEX: Final = 2**32 - 2
_DIGITS = frozenset("0123456789")


class JSNumber:
    """A JSON number as written in the source text; JS semantics come from ``js()``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JSNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSNumber) and self.js() == other.js()

    def __hash__(self) -> int:
        return hash(self.js())

    def __float__(self) -> float:
        return float(self.text)

    def js(self) -> str:
        """The number as JSON.stringify prints the double it denotes."""
        return format_number_text(self.text)

    def decimal(self) -> Decimal:
        """The exact value written in the source (no double rounding): for money fields."""
        return Decimal(self.text)

    def is_integer_literal(self) -> bool:
        """True when written without fraction or exponent (``1500000``, not ``1.5e6``)."""
        return _INT_LITERAL.fullmatch(self.text) is not None


JSValue: TypeAlias = (
    "dict[str, JSValue] | list[JSValue] | str | JSNumber | bool | int | float | None"
)


def _refuse_constant(name: str) -> NoReturn:
    raise InvalidJSON(f"{name} is not JSON")


def loads(raw: bytes | str) -> JSValue:
    """Parse a JSON text as JSON.parse does, keeping number source texts; ``InvalidJSON`` else."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        value: JSValue = json.loads(
            text,
            parse_int=JSNumber,
            parse_float=JSNumber,
            parse_constant=_refuse_constant,
        )
    except InvalidJSON:
        raise
    except UnicodeDecodeError:
        raise InvalidJSON("the body is not UTF-8") from None
    except (ValueError, RecursionError, TypeError):
        raise InvalidJSON("the body is not valid JSON") from None
    return value


def format_number_text(text: str) -> str:
    """Number(text) printed by ECMAScript's Number::toString (``null`` if not finite)."""
    if _SMALL_INT.fullmatch(text):
        # Integers below 1e15 are exact doubles and print as written (``-0`` as ``0``).
        return "0" if text == "-0" else text
    try:
        value = float(text)
    except (ValueError, OverflowError):
        raise InvalidJSON("not a JSON number") from None
    return format_double(value)


def format_double(value: float) -> str:
    """ECMAScript Number::toString(value) for a finite double; ``null`` otherwise (as JSON)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    if value < 0:
        return "-" + format_double(-value)
    digits, point = _shortest_digits(value)
    k = len(digits)
    if k <= point <= 21:
        return digits + "0" * (point - k)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * (-point) + digits
    exponent = point - 1
    sign = "+" if exponent >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(exponent)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """(digits, n) with value = 0.digits x 10**n, digits the shortest round-trip string.

    ``repr`` (David Gay's shortest, correctly rounded) picks the same digits as V8: both return
    the shortest string that round-trips and, among those, the one closest to the value.
    """
    mantissa, _, exp = repr(value).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _is_array_index(key: str) -> bool:
    return (
        key[:1] in _DIGITS
        and _ARRAY_INDEX.fullmatch(key) is not None
        and int(key) <= _MAX_ARRAY_INDEX
    )


def js_key_order(obj: dict[str, Any]) -> list[str]:
    """The order in which JS enumerates an object's own string keys."""
    indices = [key for key in obj if _is_array_index(key)]
    if not indices:
        return list(obj)
    indices.sort(key=int)
    return indices + [key for key in obj if not _is_array_index(key)]


def quote(text: str) -> str:
    """JSON.stringify(text) for a JS string (lone surrogates escaped as ``\\udxxx``)."""
    quoted = _quote(text)
    if _SURROGATE.search(quoted) is None:
        return quoted
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def dumps(value: JSValue, *, sort_keys: bool = False) -> str:
    """JSON.stringify(value) for a value from ``loads`` (or plain Python JSON values).

    ``sort_keys`` gives a canonical form instead (keys by code point), used for dedup keys that
    must not depend on the order in which a sender happened to write the keys.
    """
    parts: list[str] = []
    try:
        _emit(value, parts, 0, sort_keys)
    except RecursionError:
        raise InvalidJSON("the JSON is nested too deeply") from None
    return "".join(parts)


def _emit(value: JSValue, out: list[str], depth: int, sort_keys: bool) -> None:
    kind = type(value)
    if kind is str:  # the common cases first, by exact type (this runs once per value)
        out.append(quote(value))  # type: ignore[arg-type]
    elif kind is JSNumber:
        out.append(value.js())  # type: ignore[union-attr]
    elif isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, JSNumber):
        out.append(value.js())
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise InvalidJSON("the JSON is nested too deeply")
        out.append("{")
        first = True
        for key in sorted(value) if sort_keys else js_key_order(value):
            if not first:
                out.append(",")
            first = False
            out.append(quote(key) + ":")
            _emit(value[key], out, depth + 1, sort_keys)
        out.append("}")
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise InvalidJSON("the JSON is nested too deeply")
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, depth + 1, sort_keys)
        out.append("]")
    elif isinstance(value, int):
        out.append(_format_int(value))
    elif isinstance(value, float):
        out.append(format_double(value))
    else:
        raise InvalidJSON(f"{type(value).__name__} is not a JSON value")


def _format_int(value: int) -> str:
    if abs(value) < 2**53:
        return str(value)
    try:
        return format_double(float(value))
    except OverflowError:
        return "null"


def to_python(value: JSValue) -> Any:
    """Plain Python values: integer literals become ``int``, other numbers ``float``."""
    if isinstance(value, JSNumber):
        if value.is_integer_literal():
            return int(value.text) if len(value.text) < 4000 else float(value.text)
        return float(value.text)
    if isinstance(value, dict):
        return {key: to_python(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_python(item) for item in value]
    return value


def exact_int(value: JSValue) -> int | None:
    """An integral JSON number (``1500000``, ``1.5e6``, ``1500000.0``) as int; else None.

    Money fields go through here: the source text is read exactly (Decimal), never via float.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, JSNumber) or len(value.text) > 64:
        return None
    try:
        number = value.decimal()
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() > 30:
        return None
    if number != number.to_integral_value():
        return None
    return int(number)

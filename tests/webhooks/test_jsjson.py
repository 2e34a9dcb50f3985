"""jsjson: the JS-exact parser/serialiser, on the cases the Node vectors cannot spell."""

from __future__ import annotations

import pytest

from receiver.errors import InvalidJSON
from receiver.webhooks import jsjson


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.50", "1.5"),
        ("1E3", "1000"),
        ("0.000001", "0.000001"),
        ("0.0000001", "1e-7"),
        ("1e21", "1e+21"),
        ("999999999999999999999", "1e+21"),
        ("123456789012345678901", "123456789012345680000"),
        ("12345678901234567890", "12345678901234567000"),
        ("-0", "0"),
        ("-0.0e5", "0"),
        ("1e400", "null"),
        ("-1e400", "null"),
        ("1e-400", "0"),
        ("5e-324", "5e-324"),
        ("123e-20", "1.23e-18"),
        ("-1.5e300", "-1.5e+300"),
    ],
)
def test_number_formatting(text: str, expected: str) -> None:
    assert jsjson.dumps(jsjson.loads(text)) == expected


def test_key_order_is_javascripts() -> None:
    text = '{"b":1,"10":2,"2":3,"a":4,"01":5,"4294967295":6,"4294967294":7,"-1":8,"0":9}'
    assert jsjson.dumps(jsjson.loads(text)) == (
        '{"0":9,"2":3,"10":2,"4294967294":7,"b":1,"a":4,"01":5,"4294967295":6,"-1":8}'
    )


def test_duplicate_key_keeps_first_position_and_last_value() -> None:
    assert jsjson.dumps(jsjson.loads('{"a":1,"b":2,"a":3}')) == '{"a":3,"b":2}'


def test_string_escaping_is_javascripts() -> None:
    value = '\u2028\u2029\x00\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f"\\/é😀\ud800'
    assert jsjson.dumps(value) == (
        '"\u2028\u2029\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\x7f\\"\\\\/é😀\\ud800"'
    )


def test_python_values_serialise_like_javascript_numbers() -> None:
    assert jsjson.dumps([1.0, 2**60, 1e21, -0.0, float("nan"), True, None]) == (
        "[1,1152921504606847000,1e+21,0,null,true,null]"
    )


def test_sorted_canonical_form() -> None:
    assert jsjson.dumps(jsjson.loads('{"b":1,"a":{"d":1.0,"c":2}}'), sort_keys=True) == (
        '{"a":{"c":2,"d":1},"b":1}'
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b'"\x01"',
        b'"\\x41"',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b'{"a":1,}',
        b"[1 2]",
        b"[" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ],
)
def test_malformed_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidJSON):
        jsjson.loads(raw)


def test_deep_but_parseable_nesting_is_refused_by_dumps() -> None:
    value = jsjson.loads(b"[" * 500 + b"]" * 500)
    with pytest.raises(InvalidJSON):
        jsjson.dumps(value)


def test_huge_number_text_is_cheap_and_prints_like_js() -> None:
    assert jsjson.dumps(jsjson.loads(b"1" * 200_000)) == "null"
    assert jsjson.dumps(jsjson.loads(b"0." + b"0" * 200_000 + b"1")) == "0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1500000", 1500000),
        ("1.5e6", 1500000),
        ("1500000.000", 1500000),
        ("12345678901234567891", 12345678901234567891),
        ("1.5", None),
        ("1e400", None),
        ("1e-400", None),
        ('"1"', None),
        ("true", None),
    ],
)
def test_exact_int_reads_the_source_text(text: str, expected: int | None) -> None:
    assert jsjson.exact_int(jsjson.loads(text)) == expected

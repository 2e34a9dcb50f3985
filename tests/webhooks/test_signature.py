"""signature.verify: header/body precedence, rotation, and a fuzz that only typed errors escape."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pydantic import SecretStr

from receiver.errors import InvalidJSON, ReceiverError
from receiver.webhooks.errors import WebhookMalformed, WebhookUnauthorized
from receiver.webhooks.signature import dedup_key, sign, signed_bytes, verify

SECRET = "whsec_unit_test_secret"
SECRETS = [SecretStr(SECRET)]
DATA = {"referenceId": "TXN-1", "refundAmount": 1500000, "refundAmountSats": 1500}
SIGNED = json.dumps({"event": "refund.completed", "data": DATA}, separators=(",", ":")).encode()
SIG = sign(SECRET, SIGNED)


def _body(signature: str | None = SIG, **extra: object) -> bytes:
    body: dict[str, object] = {"event": "refund.completed", "data": DATA, **extra}
    if signature is not None:
        body["signature"] = signature
    return json.dumps(body, separators=(",", ":")).encode()


def test_header_is_enough() -> None:
    result = verify(_body(None), SIG, SECRETS)
    assert result.event == "refund.completed" and result.signed == SIGNED


def test_body_signature_is_the_fallback() -> None:
    assert verify(_body(), None, SECRETS).form == "raw"


def test_a_blank_header_counts_as_absent() -> None:
    assert verify(_body(), "  ", SECRETS).secret_index == 0


def test_header_wins_over_a_correct_body_signature() -> None:
    with pytest.raises(WebhookUnauthorized):
        verify(_body(), sign("other", SIGNED), SECRETS)


def test_bare_hex_without_prefix_is_accepted() -> None:
    verify(_body(None), SIG.removeprefix("sha256="), SECRETS)


def test_rotation_any_secret_may_match() -> None:
    secrets = [SecretStr("new-secret"), SecretStr(SECRET)]
    assert verify(_body(), None, secrets).secret_index == 1


def test_unsigned_top_level_fields_are_ignored() -> None:
    """Only {event, data} is signed; an extra top-level field neither helps nor hurts."""
    assert verify(_body(SIG, extra="x"), None, SECRETS).data == verify(_body(), None, SECRETS).data


def test_rebuilt_form_is_used_when_the_raw_body_cannot_be_cut() -> None:
    pretty = json.dumps(
        {"signature": SIG, "data": DATA, "event": "refund.completed"}, indent=3
    ).encode()
    assert verify(pretty, None, SECRETS).form == "rebuilt"


@pytest.mark.parametrize(
    ("body", "header", "secrets"),
    [
        (_body(None), None, SECRETS),  # no signature anywhere
        (_body(), "sha256=", SECRETS),
        (_body(), "sha256=" + "0" * 64, SECRETS),
        (_body(), SIG[:-1], SECRETS),
        (_body(), SIG + "00", SECRETS),
        (_body(), "md5=" + SIG[7:], SECRETS),
        (_body(), SIG, []),
        (_body(signature=123), None, SECRETS),  # type: ignore[arg-type]
        (_body(sign(SECRET, SIGNED + b" ")), None, SECRETS),
        (_body(SIG).replace(b"1500000", b"1500001"), None, SECRETS),
    ],
)
def test_every_rejection_reads_the_same(
    body: bytes, header: str | None, secrets: list[SecretStr]
) -> None:
    with pytest.raises(WebhookUnauthorized) as caught:
        verify(body, header, secrets)
    assert caught.value.status == 401
    assert caught.value.message == "webhook signature missing or invalid"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not json", InvalidJSON),
        (b"[]", WebhookMalformed),
        (b'{"data":{}}', WebhookMalformed),
        (b'{"event":"","data":{}}', WebhookMalformed),
        (b'{"event":1,"data":{}}', WebhookMalformed),
        (b'{"event":"x"}', WebhookMalformed),
        (b'{"event":"x","data":[]}', WebhookMalformed),
    ],
)
def test_malformed_bodies_are_400s(raw: bytes, error: type[ReceiverError]) -> None:
    with pytest.raises(error) as caught:
        verify(raw, SIG, SECRETS)
    assert caught.value.status == 400


def test_dedup_key_ignores_spelling_and_key_order() -> None:
    a = verify(_body(), None, SECRETS)
    reordered = {"refundAmountSats": 1.5e3, "refundAmount": 1500000.0, "referenceId": "TXN-1"}
    b_signed = json.dumps({"event": "refund.completed", "data": reordered}).encode()
    assert dedup_key("refund.completed", reordered) == a.dedup_key
    assert dedup_key("refund.failed", DATA) != a.dedup_key
    assert b_signed != a.signed


def test_signed_bytes_are_js_stringify() -> None:
    expected = '{"event":"e","data":{"1":"\u2028","b":1}}'.encode()
    assert signed_bytes("e", {"b": 1.0, "1": "\u2028"}) == expected


# ---- fuzz -------------------------------------------------------------------------------------
SEEDS = [
    json.loads(v["body"])
    for v in json.loads((Path(__file__).parent / "vectors" / "vectors.json").read_text("utf-8"))[
        "vectors"
    ][:40]
]
FRAGMENTS = [
    b"1" * 400,
    b"1e999999",
    b"-",
    b"NaN",
    b"\xff",
    b"\xed\xa0\x80",
    b'"\\ud800"',
    b"[" * 2000,
    b"{}",
    b"null",
    b'"\x00"',
    b"\\",
    b'"',
    b",",
    b"}",
    b"]",
    b"0x10",
    b"1e",
    b"\xf0\x9f\x98",
    b'"event"',
    b'"data"',
    b'"signature":"sha256=',
    b"true",
    "\u2028".encode(),
]


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randint(0, len(data))
        if op == 0 and data:
            del data[at : at + rng.randint(1, 8)]
        elif op == 1:
            data[at:at] = rng.choice(FRAGMENTS)
        elif op == 2 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 3:
            data = data[:at]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    return bytes(data)


def _random_header(rng: random.Random) -> str | None:
    return rng.choice(
        [
            None,
            "",
            SIG,
            "sha256=" + "".join(rng.choice("0123456789abcdefxyz=") for _ in range(64)),
            "sha256=" + "é" * 64,
            "\x00" * 10,
            "sha256=" + "a" * rng.randint(0, 130),
            " ".join([SIG, SIG]),
        ]
    )


def test_fuzz_only_typed_errors_escape() -> None:
    rng = random.Random(20241122)
    outcomes: dict[str, int] = {}
    for _ in range(6000):
        seed = rng.choice(SEEDS)
        raw = json.dumps(seed, separators=rng.choice([(",", ":"), (", ", ": ")])).encode()
        raw = _mutate(rng, raw) if rng.random() < 0.9 else raw
        try:
            verify(raw, _random_header(rng), rng.choice([SECRETS, [], SECRETS * 2]))
            name = "ok"
        except (InvalidJSON, WebhookUnauthorized) as exc:  # WebhookMalformed is an InvalidJSON
            assert exc.status in (400, 401)
            name = type(exc).__name__
        outcomes[name] = outcomes.get(name, 0) + 1
    # the fuzz reaches every branch, not only the JSON parser
    assert {"InvalidJSON", "WebhookMalformed", "WebhookUnauthorized"} <= set(outcomes)

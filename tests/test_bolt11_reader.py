"""The fast reader agrees with the `bolt11` package (and the spec-test decoder) field by field."""

from __future__ import annotations

import os
import time

import bolt11
import coincurve
import pytest
from bolt11.models.tags import TagChar, Tags
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver import bolt11_reader
from tests.support import bolt11_ref

KEY = coincurve.PrivateKey(os.urandom(32))
PAYEE = KEY.public_key.format(compressed=True).hex()


@st.composite
def invoices(draw: st.DrawFn) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, draw(st.binary(min_size=32, max_size=32)).hex())
    tags.add(TagChar.payment_secret, draw(st.binary(min_size=32, max_size=32)).hex())
    if draw(st.booleans()):
        tags.add(TagChar.description, draw(st.text(max_size=120)))
    else:
        tags.add(TagChar.description_hash, draw(st.binary(min_size=32, max_size=32)).hex())
    if draw(st.booleans()):
        tags.add(TagChar.expire_time, draw(st.integers(min_value=1, max_value=2**40)))
    tags.add(TagChar.min_final_cltv_expiry, draw(st.integers(min_value=1, max_value=2000)))
    keep_payee = draw(st.booleans())
    if keep_payee:
        tags.add(TagChar.payee, PAYEE)
    amount = draw(st.none() | st.integers(min_value=1, max_value=10**14 - 1))
    invoice = bolt11.Bolt11(
        currency=draw(st.sampled_from(["bc", "tb", "tbs", "bcrt"])),
        amount_msat=None if amount is None else bolt11.MilliSatoshi(amount),
        date=draw(st.integers(min_value=0, max_value=2**35 - 1)),
        tags=tags,
    )
    return str(bolt11.encode(invoice, KEY.secret.hex(), keep_payee=keep_payee))


@settings(max_examples=300, deadline=None)
@given(invoices())
def test_reader_agrees_with_the_bolt11_package(invoice: str) -> None:
    mine = bolt11_reader.read(invoice)
    theirs = bolt11.decode(invoice)
    assert mine.currency == theirs.currency
    assert mine.amount_msat == (None if theirs.amount_msat is None else int(theirs.amount_msat))
    assert mine.timestamp == theirs.date
    assert mine.payment_hash == theirs.payment_hash
    assert mine.payment_secret == theirs.payment_secret
    assert mine.description == theirs.description
    assert mine.description_hash == theirs.description_hash
    assert mine.expiry == theirs.expiry
    assert mine.payee == PAYEE == theirs.payee
    ref = bolt11_ref.decode(invoice)
    assert (ref.amount_msat, ref.payment_hash, ref.payee) == (
        mine.amount_msat,
        mine.payment_hash,
        mine.payee,
    )


@settings(max_examples=300, deadline=None)
@given(
    currency=st.sampled_from(["bc", "tb", "tbs", "bcrt"]),
    amount=st.integers(min_value=1, max_value=10**14 - 1),
    timestamp=st.integers(min_value=0, max_value=2**35 - 1),
    payment_hash=st.binary(min_size=32, max_size=32),
    payment_secret=st.binary(min_size=32, max_size=32),
    description=st.text(max_size=200).filter(lambda t: len(t.encode()) <= 639)
    | st.binary(min_size=32, max_size=32),
    expiry=st.integers(min_value=0, max_value=2**40),
    cltv=st.integers(min_value=0, max_value=2**20),
)
def test_the_writer_writes_what_the_bolt11_package_writes(
    currency: str,
    amount: int,
    timestamp: int,
    payment_hash: bytes,
    payment_secret: bytes,
    description: str | bytes,
    expiry: int,
    cltv: int,
) -> None:
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash.hex())
    tags.add(TagChar.payment_secret, payment_secret.hex())
    if isinstance(description, bytes):
        tags.add(TagChar.description_hash, description.hex())
    else:
        tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, cltv)
    invoice = bolt11.Bolt11(
        currency=currency, amount_msat=bolt11.MilliSatoshi(amount), date=timestamp, tags=tags
    )
    written = bolt11_reader.write(
        KEY,
        currency=currency,
        amount_msat=amount,
        timestamp=timestamp,
        payment_hash=payment_hash,
        payment_secret=payment_secret,
        description=None if isinstance(description, bytes) else description,
        description_hash=description if isinstance(description, bytes) else None,
        expiry=expiry,
        min_final_cltv_expiry=cltv,
    )
    assert written == bolt11.encode(invoice, KEY.secret.hex())
    assert bolt11_reader.read(written).amount_msat == amount


def test_the_writer_refuses_a_field_longer_than_ten_bits_can_say() -> None:
    fields = {
        "currency": "bcrt",
        "amount_msat": 1000,
        "timestamp": int(time.time()),
        "payment_hash": bytes(32),
        "payment_secret": bytes(32),
        "description_hash": None,
        "expiry": 3600,
        "min_final_cltv_expiry": 18,
    }
    longest = bolt11_reader.write(KEY, description="x" * 639, **fields)  # type: ignore[arg-type]
    assert bolt11_reader.read(longest).description == "x" * 639
    with pytest.raises(ValueError, match="longer than 1023 words"):
        bolt11_reader.write(KEY, description="x" * 640, **fields)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(invoices(), st.data())
def test_any_single_character_change_is_refused(invoice: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(invoice) - 1))
    replacement = data.draw(st.sampled_from(bolt11_reader.CHARSET + "1bio"))
    if invoice[position] == replacement:
        return
    mutated = invoice[:position] + replacement + invoice[position + 1 :]
    with pytest.raises(ValueError):
        bolt11_reader.read(mutated)


def test_signature_of_another_node_with_n_field_is_refused() -> None:
    other = coincurve.PrivateKey(os.urandom(32))
    tags = Tags()
    tags.add(TagChar.payment_hash, "11" * 32)
    tags.add(TagChar.payment_secret, "22" * 32)
    tags.add(TagChar.description, "x")
    tags.add(TagChar.payee, PAYEE)  # claims KEY's node, signed by another
    invoice = bolt11.Bolt11(currency="bc", date=int(time.time()), tags=tags)
    forged = bolt11.encode(invoice, other.secret.hex(), keep_payee=True, ignore_exceptions=True)
    with pytest.raises(ValueError, match="payee"):
        bolt11_reader.read(forged)


@pytest.mark.parametrize(
    ("invoice", "reason"),
    [
        ("", "separator"),
        ("lnbc1", "checksum"),
        ("LNbc1qqqq", "mixed case"),
        ("lnbc1" + "b" * 200, "alphabet"),
        ("x" * 8000, "bolt11 string"),
    ],
)
def test_malformed_strings(invoice: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        bolt11_reader.read(invoice)


def test_spec_vector_from_bolt11() -> None:
    # BOLT #11 example: "Please send $3 for a cup of coffee to the same peer, within one minute"
    vector = (
        "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqw"
        "zqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy"
        "8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vg"
        "pfna3rh"
    )
    fields = bolt11_reader.read(vector)
    assert fields.amount_msat == 250_000_000
    assert fields.description == "1 cup coffee"
    assert fields.expiry == 60
    assert fields.payment_hash == "0001020304050607080900010203040506070809000102030405060708090102"
    assert fields.payee == "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"

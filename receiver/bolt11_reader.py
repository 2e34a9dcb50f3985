"""A strict BOLT11 reader for the verification hot path.

``receiver.verify`` decodes every invoice before it leaves; the ``bolt11`` package does that in
5-10 ms of CPU (it builds bit strings), which dominated the mint path. This reader does the same
job from the spec in well under a millisecond: bech32 (no 90-character limit), the amount in the
human-readable part with integer arithmetic, the timestamp, the ``p s d h x n`` tagged fields
(with the spec's length rules: a ``p``/``s``/``h`` field not 52 words long or an ``n`` field not
53 is skipped), and the signature, whose key is recovered with libsecp256k1 (coincurve) and, when
an ``n`` field names the payee, must be that key.

It is differential-tested against the ``bolt11`` package (``tests/test_bolt11_reader.py``). Any
malformed input raises ``ValueError`` with a short reason; ``receiver.verify`` maps it to
``InvalidInvoice``.

``write`` is the other direction, for the signing fake node only: the same fields, signed with
the node key. The package's encoder spends ~5 ms of CPU per invoice turning bit strings into
words one at a time, most of a fake mint (P1 in ``bench/invoice.py``); this one writes the words
from integers. Its output is the package's, character for character (RFC 6979 signatures are
deterministic), which ``tests/test_bolt11_reader.py`` checks.
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass

import coincurve

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
# Words are held as bytes (one 5-bit value per byte): bech32 characters to values, and values to
# base-32 digits, which ``int(..., 32)`` reads in C (a field's bits become one integer at once).
_NOT_A_WORD = 0xFF
_TO_WORDS = bytes(CHARSET.find(chr(b)) if chr(b) in CHARSET else _NOT_A_WORD for b in range(256))
_TO_DIGITS = bytes.maketrans(bytes(range(32)), b"0123456789abcdefghijklmnopqrstuv")
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# The checksum step XORs in _GEN[i] for each bit i set in the top five bits; precomputed per value.
_GEN_BY_TOP = tuple(
    functools.reduce(operator.xor, (g for i, g in enumerate(_GEN) if top >> i & 1), 0)
    for top in range(32)
)
_HRP = re.compile(r"ln(bcrt|bc|tbs|tb)((?:[1-9][0-9]*)([munp]?))?")
# msat per unit of the hrp amount as (numerator, denominator): 1 BTC = 10^11 msat.
_MULTIPLIER = {"": (10**11, 1), "m": (10**8, 1), "u": (10**5, 1), "n": (10**2, 1), "p": (1, 10)}
SIGNATURE_WORDS = 104  # 65 bytes
MAX_LENGTH = 7089


@dataclass(frozen=True)
class Bolt11Fields:
    """What the service reads from an invoice."""

    currency: str
    amount_msat: int | None
    timestamp: int
    payment_hash: str
    payment_secret: str
    description: str | None
    description_hash: str | None
    expiry: int
    payee: str


def _polymod(values: bytes, chk: int = 1) -> int:
    for value in values:
        chk = (chk & 0x1FFFFFF) << 5 ^ value ^ _GEN_BY_TOP[chk >> 25]
    return chk


def _expand(hrp: bytes) -> bytes:
    """The human-readable part as the checksum reads it."""
    return bytes(c >> 5 for c in hrp) + b"\0" + bytes(c & 31 for c in hrp)


def _words_to_int(words: bytes) -> int:
    return int(words.translate(_TO_DIGITS), 32) if words else 0


def _words_to_bytes(words: bytes) -> bytes:
    """5-bit words to bytes, the last byte padded with zero bits (as BOLT #11 signs them)."""
    bits = len(words) * 5
    size = (bits + 7) // 8
    return (_words_to_int(words) << (size * 8 - bits)).to_bytes(size, "big")


def _words_to_exact_bytes(words: bytes) -> bytes:
    """Bytes of a field whose bit length is a whole number of bytes plus zero padding."""
    data = _words_to_bytes(words)
    return data[: len(words) * 5 // 8]


def amount_from_hrp(hrp: str) -> tuple[str, int | None]:
    """Currency and exact msat amount (None: no amount) of a human-readable part."""
    match = _HRP.fullmatch(hrp)
    if match is None:
        raise ValueError("prefix is not a BOLT11 prefix")
    if match.group(2) is None:
        return match.group(1), None
    multiplier = match.group(3)
    digits = match.group(2)[: len(match.group(2)) - len(multiplier)]
    numerator, denominator = _MULTIPLIER[multiplier]
    value = int(digits) * numerator
    if value % denominator:
        raise ValueError("pico amount is not a whole number of msat")
    return match.group(1), value // denominator


def read(invoice: str) -> Bolt11Fields:
    """Decode and check the signature of a bolt11 string; ``ValueError`` when malformed."""
    if len(invoice) > MAX_LENGTH or not invoice.isascii():
        raise ValueError("not a bolt11 string")
    if invoice.lower() != invoice and invoice.upper() != invoice:
        raise ValueError("mixed case")
    text = invoice.lower()
    separator = text.rfind("1")
    if separator < 1:
        raise ValueError("no separator")
    hrp = text[:separator]
    words = text[separator + 1 :].encode("ascii").translate(_TO_WORDS)
    if _NOT_A_WORD in words:
        raise ValueError("character outside the bech32 alphabet")
    hrp_bytes = hrp.encode("ascii")
    if _polymod(words, _polymod(_expand(hrp_bytes))) != 1:
        raise ValueError("bad checksum")
    currency, amount = amount_from_hrp(hrp)
    words = words[:-6]
    if len(words) < 7 + SIGNATURE_WORDS:
        raise ValueError("too short")
    body, signature_words = words[:-SIGNATURE_WORDS], words[-SIGNATURE_WORDS:]
    fields: dict[str, bytes] = {}
    position = 7
    while position < len(body):
        if position + 3 > len(body):
            raise ValueError("truncated tagged field")
        tag = CHARSET[body[position]]
        length = body[position + 1] * 32 + body[position + 2]
        data = body[position + 3 : position + 3 + length]
        if len(data) != length:
            raise ValueError("truncated tagged field")
        position += 3 + length
        wanted = {"p": 52, "s": 52, "h": 52, "n": 53}.get(tag)
        if tag in fields or (wanted is not None and length != wanted):
            continue  # the spec: skip repeats and p/s/h/n fields of the wrong length
        fields[tag] = data
    signature = _words_to_bytes(signature_words)
    if signature[64] > 3:
        raise ValueError("bad recovery id")
    message = hrp_bytes + _words_to_bytes(body)
    payee = _signer(signature, message, fields.get("n"))
    if "p" not in fields or "s" not in fields:
        raise ValueError("missing payment hash or payment secret")
    if ("d" in fields) == ("h" in fields):
        raise ValueError("needs exactly one of description and description hash")
    description = None
    if "d" in fields:
        try:
            description = _words_to_exact_bytes(fields["d"]).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("description is not UTF-8") from None
    return Bolt11Fields(
        currency=currency,
        amount_msat=amount,
        timestamp=_words_to_int(body[:7]),
        payment_hash=_words_to_exact_bytes(fields["p"]).hex(),
        payment_secret=_words_to_exact_bytes(fields["s"]).hex(),
        description=description,
        description_hash=_words_to_exact_bytes(fields["h"]).hex() if "h" in fields else None,
        expiry=_words_to_int(fields["x"]) if "x" in fields else 3600,
        payee=payee,
    )


def _int_to_words(value: int, count: int) -> bytes:
    return bytes(value >> 5 * (count - 1 - i) & 31 for i in range(count))


def _bytes_to_words(data: bytes) -> bytes:
    """Bytes to 5-bit words, the last word padded with zero bits."""
    count = (len(data) * 8 + 4) // 5
    return _int_to_words(int.from_bytes(data, "big") << (count * 5 - len(data) * 8), count)


def _field(tag: str, words: bytes) -> bytes:
    if len(words) > 1023:  # data_length is ten bits
        raise ValueError(f"the {tag} field is longer than 1023 words")
    return bytes((CHARSET.index(tag), len(words) >> 5, len(words) & 31)) + words


def _minimal_int(value: int) -> bytes:
    return _int_to_words(value, (value.bit_length() + 4) // 5)


def hrp_amount(amount_msat: int) -> str:
    """The shortest human-readable amount: ``1500000`` msat is ``15u``, ``10**14`` is ``1000``."""
    value, unit = amount_msat * 10, "p"
    for next_unit in ("n", "u", "m", ""):
        if value % 1000:
            break
        value, unit = value // 1000, next_unit
    return f"{value}{unit}"


def write(
    key: coincurve.PrivateKey,
    *,
    currency: str,
    amount_msat: int,
    timestamp: int,
    payment_hash: bytes,
    payment_secret: bytes,
    description: str | None,
    description_hash: bytes | None,
    expiry: int,
    min_final_cltv_expiry: int,
) -> str:
    """A signed bolt11 string with the ``p s d|h x c`` fields, in the ``bolt11`` package's order."""
    hrp = f"ln{currency}{hrp_amount(amount_msat)}"
    body = _int_to_words(timestamp, 7) + _field("p", _bytes_to_words(payment_hash))
    body += _field("s", _bytes_to_words(payment_secret))
    if description_hash is not None:
        body += _field("h", _bytes_to_words(description_hash))
    else:
        body += _field("d", _bytes_to_words((description or "").encode("utf-8")))
    body += _field("x", _minimal_int(expiry)) + _field("c", _minimal_int(min_final_cltv_expiry))
    hrp_bytes = hrp.encode("ascii")
    words = body + _bytes_to_words(key.sign_recoverable(hrp_bytes + _words_to_bytes(body)))
    checksum = _polymod(words + bytes(6), _polymod(_expand(hrp_bytes))) ^ 1
    words += _int_to_words(checksum, 6)
    return hrp + "1" + "".join(CHARSET[w] for w in words)


def _signer(signature: bytes, message: bytes, payee_words: bytes | None) -> str:
    """The compressed key that signed ``message``; with an ``n`` field it must be that key."""
    try:
        recovered = coincurve.PublicKey.from_signature_and_message(signature, message)
    except Exception as exc:  # libsecp256k1 rejects an invalid signature
        raise ValueError("signature does not recover a key") from exc
    key: str = recovered.format(compressed=True).hex()
    if payee_words is None:
        return key
    payee = _words_to_exact_bytes(payee_words).hex()
    if key != payee:
        # A signature with a wrong recovery id still verifies against the named payee.
        for flag in range(4):
            try:
                candidate = coincurve.PublicKey.from_signature_and_message(
                    signature[:64] + bytes([flag]), message
                )
            except Exception:  # noqa: S112 - an id that recovers nothing: try the next
                continue
            if candidate.format(compressed=True).hex() == payee:
                return payee
        raise ValueError("signature is not the payee's")
    return key

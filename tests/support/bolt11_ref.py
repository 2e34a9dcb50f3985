"""An independent BOLT11 decoder for tests: written from the spec, shares no code with `bolt11`.

It decodes bech32 (no length limit), the amount in the human-readable part with integer
arithmetic, the timestamp, the p/s/d/h/x/n tagged fields and recovers the signing key with
libsecp256k1 (coincurve). It is deliberately small and strict.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import coincurve

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
GEN = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= GEN[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def bech32_decode(text: str) -> tuple[str, list[int]]:
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    pos = text.rfind("1")
    hrp, data = text[:pos], [CHARSET.index(c) for c in text[pos + 1 :]]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("bad checksum")
    return hrp, data[:-6]


def _to_bytes(words: list[int]) -> bytes:
    acc, bits, out = 0, 0, bytearray()
    for w in words:
        acc = (acc << 5) | w
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def _to_int(words: list[int]) -> int:
    value = 0
    for w in words:
        value = value * 32 + w
    return value


PREFIXES = {"bc": "bitcoin", "tb": "testnet", "tbs": "signet", "bcrt": "regtest"}
UNIT_MSAT = {"m": (10**8, 1), "u": (10**5, 1), "n": (100, 1), "p": (1, 10), "": (10**11, 1)}


@dataclass
class RefInvoice:
    network: str
    amount_msat: int | None
    timestamp: int
    payment_hash: str
    expiry: int
    description: str | None
    description_hash: str | None
    payee: str


def decode(invoice: str) -> RefInvoice:
    hrp, words = bech32_decode(invoice)
    m = re.fullmatch(r"ln(bcrt|bc|tbs|tb)(?:([1-9][0-9]*)([munp]?))?", hrp)
    if m is None:
        raise ValueError(f"bad hrp {hrp}")
    amount = None
    if m.group(2):
        num, den = UNIT_MSAT[m.group(3)]
        total = int(m.group(2)) * num
        if total % den:
            raise ValueError("sub-msat amount")
        amount = total // den
    sig_words, body = words[-104:], words[:-104]
    timestamp = _to_int(body[:7])
    fields: dict[str, list[int]] = {}
    i = 7
    while i < len(body):
        tag = CHARSET[body[i]]
        length = body[i + 1] * 32 + body[i + 2]
        fields.setdefault(tag, body[i + 3 : i + 3 + length])
        i += 3 + length
    sig = _to_bytes(sig_words)
    message = hrp.encode() + _to_bytes(body)
    recovered = coincurve.PublicKey.from_signature_and_message(sig, message)  # sha256 inside
    payee = recovered.format(compressed=True).hex()
    if "n" in fields:
        if _to_bytes(fields["n"])[:33].hex() != payee:
            raise ValueError("n field does not match signature")
    return RefInvoice(
        network=PREFIXES[m.group(1)],
        amount_msat=amount,
        timestamp=timestamp,
        payment_hash=_to_bytes(fields["p"])[:32].hex(),
        expiry=_to_int(fields["x"]) if "x" in fields else 3600,
        description=_to_bytes(fields["d"]).rstrip(b"\0").decode() if "d" in fields else None,
        description_hash=_to_bytes(fields["h"])[:32].hex() if "h" in fields else None,
        payee=payee,
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Money amounts. Everything is an integer number of millisatoshis (``Msat``) end to end.

Sats exist only inside sats-only backends, which call ``msat_to_sat_exact`` and refuse (rather
than round) an amount that is not a whole number of sats. Floats never hold money.
"""

from __future__ import annotations

from typing import NewType

from receiver.errors import AmountNotRepresentable

Msat = NewType("Msat", int)

MSAT_PER_SAT = 1000


def msat(value: int) -> Msat:
    """Type an integer as msat, refusing bools and non-integers (a float is a bug, not money)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"msat amounts are integers, got {type(value).__name__}")
    return Msat(value)


def sat_to_msat(sats: int) -> Msat:
    """Whole sats to msat (exact)."""
    if isinstance(sats, bool) or not isinstance(sats, int):
        raise TypeError(f"sat amounts are integers, got {type(sats).__name__}")
    return Msat(sats * MSAT_PER_SAT)


def msat_to_sat_exact(amount: Msat, *, backend: str = "") -> int:
    """msat to sats for a sats-only backend; refuses amounts that are not whole sats."""
    sats, rest = divmod(int(amount), MSAT_PER_SAT)
    if rest:
        raise AmountNotRepresentable(
            f"{amount} msat is not a whole number of sats; this backend cannot mint it exactly",
            backend=backend,
        )
    return sats

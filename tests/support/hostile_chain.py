"""Mint through [hostile node, good LND double] in a process of its own; print what happened.

``python -m tests.support.hostile_chain <hostile url> <mints>`` builds the failover chain the
service builds (``BackendChain`` over two ``LndBackend``s), mints ``<mints>`` invoices and prints
one JSON line: the payee of each verified invoice, the good node's id, the codes the hostile
node's attempts got, and this process's peak RSS. Run as a subprocess so that its peak RSS is
the receiver's alone (not the test process's, nor the hostile server's).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path

from receiver.amounts import Msat
from receiver.errors import MintUnavailable
from receiver.lightning.base import BackendContext, Network
from receiver.lightning.failover import BackendChain
from receiver.lightning.lnd import LndBackend, LndConfig
from tests.lightning.lnd_double import MACAROON, LndDouble


def lnd(url: str, name: str, context: BackendContext) -> LndBackend:
    config = LndConfig(_env_file=None, url=url, macaroon=MACAROON)  # type: ignore[call-arg]
    backend = LndBackend(config, context)
    backend.name = name
    return backend


async def main(hostile_url: str, mints: int) -> dict[str, object]:
    context = BackendContext(network=Network.REGTEST, data_dir=Path(tempfile.mkdtemp()))
    payees: list[str] = []
    async with LndDouble().running() as good:
        backends = [lnd(hostile_url, "hostile", context), lnd(good.url, "good", context)]
        # A threshold above the number of mints: every mint meets the hostile node first.
        chain = BackendChain(
            backends, network=Network.REGTEST, min_validity=60, breaker_threshold=mints + 1
        )
        loop = asyncio.get_running_loop()
        try:
            for i in range(mints):
                try:
                    minted = await chain.mint(
                        Msat(1_500_000 + i), "hostile", 3600, deadline_at=loop.time() + 8.0
                    )
                except MintUnavailable:
                    payees.append("none")
                    continue
                payees.append(minted.invoice.payee)
        finally:
            for backend in backends:
                await backend.aclose()
        peak_kib = _peak_rss_kib()
        return {
            "payees": payees,
            "good": good.node_id,
            "peak_rss_mb": peak_kib / 1024,
        }


def _peak_rss_kib() -> int:
    """This process's own peak RSS: VmHWM belongs to its memory map, made new at exec.

    (getrusage's ru_maxrss is not: Linux carries it over execve, so a child of a large pytest
    process would report the parent's size.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        result = asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    result["hostile_codes"] = [
        log["code"]
        for log in logs
        if log.get("event") == "mint.backend_failed" and log.get("backend") == "hostile"
    ]
    print(json.dumps(result))

"""A real LNbits (from PyPI, FakeWallet funding source) on a loopback port, for the tests.

LNbits pins its own dependencies, so it lives in its own virtualenv: ``$KOTANI_LNBITS_VENV``
(default ``<repo>/.venv-lnbits``), made by ``tests/lightning/install_lnbits.sh`` when missing.
``LnbitsServer.start`` runs ``lnbits`` from its site-packages directory (it looks for its static
files there), waits for ``/api/v1/health``, creates an account (user, wallet, Lightning Address)
and turns the wallet's fiat currency off (otherwise every invoice does a slow price lookup on the
internet). ``stop`` ends the process group it started. Failures raise ``LnbitsUnavailable`` with
the reason and the tail of LNbits' log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = Path(__file__).with_name("install_lnbits.sh")
START_TIMEOUT = 90.0


class LnbitsUnavailable(RuntimeError):
    """LNbits could not be installed or started; the message says why."""


@dataclass(frozen=True)
class LnbitsAccount:
    """What ``POST /api/v1/account`` gave back."""

    wallet_id: str
    inkey: str
    adminkey: str
    lightning_address: str


def venv_path() -> Path:
    return Path(os.environ.get("KOTANI_LNBITS_VENV", REPO / ".venv-lnbits"))


def ensure_installed(venv: Path) -> Path:
    """The ``lnbits`` executable, installing LNbits into ``venv`` first if needed (slow)."""
    executable = venv / "bin" / "lnbits"
    if executable.exists():
        return executable
    env = {**os.environ, "KOTANI_LNBITS_VENV": str(venv)}
    try:
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LnbitsUnavailable(f"installing LNbits into {venv} took over 20 min") from exc
    if result.returncode != 0 or not executable.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise LnbitsUnavailable(
            f"installing LNbits into {venv} failed (exit {result.returncode}):\n" + "\n".join(tail)
        )
    return executable


def _site_packages(venv: Path) -> Path:
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import lnbits, os; print(os.path.dirname(os.path.dirname(lnbits.__file__)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        raise LnbitsUnavailable(f"lnbits does not import in {venv}: {probe.stderr.strip()[-500:]}")
    return Path(probe.stdout.strip())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LnbitsServer:
    """One LNbits process with a FakeWallet funding source and one account."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "lnbits.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.account: LnbitsAccount | None = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> LnbitsAccount:
        venv = venv_path()
        executable = ensure_installed(venv)
        cwd = _site_packages(venv)
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RECEIVER_", "LNBITS_", "PYTHON", "VIRTUAL_ENV"))
        }
        env.update(
            LNBITS_DATA_FOLDER=str(data),
            LNBITS_BACKEND_WALLET_CLASS="FakeWallet",
            LNBITS_ADMIN_UI="false",
            # The default 200 requests a minute answers 429 under any benchmark.
            LNBITS_RATE_LIMIT_NO="1000000",
            PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(executable), "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
            self.account = self._create_account()
        except BaseException:
            self.stop()
            raise
        return self.account

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise LnbitsUnavailable(
                        f"lnbits exited with {self.process.returncode} before it was ready:\n"
                        + self.log_tail()
                    )
                try:
                    if client.get(f"{self.url}/api/v1/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise LnbitsUnavailable(
            f"lnbits did not answer /api/v1/health within {START_TIMEOUT:.0f} s:\n"
            + self.log_tail()
        )

    def _create_account(self) -> LnbitsAccount:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            created = client.post("/api/v1/account", json={"name": "kotani-receiver-tests"})
            if created.status_code != 200:
                raise LnbitsUnavailable(
                    f"POST /api/v1/account answered {created.status_code}: {created.text[:300]}"
                )
            wallet = created.json()
            account = LnbitsAccount(
                wallet_id=wallet["id"],
                inkey=wallet["inkey"],
                adminkey=wallet["adminkey"],
                lightning_address=wallet["lightning_address"],
            )
            # A USD wallet prices every invoice through the internet (slow, failing here).
            patched = client.patch(
                "/api/v1/wallet", json={"currency": ""}, headers={"X-Api-Key": account.adminkey}
            )
            if patched.status_code != 200:
                raise LnbitsUnavailable(
                    f"PATCH /api/v1/wallet answered {patched.status_code}: {patched.text[:300]}"
                )
        return account

    @property
    def lnurlp_url(self) -> str:
        """The account's Lightning Address as its LNURL-pay URL (http: loopback)."""
        assert self.account is not None
        return f"{self.url}/.well-known/lnurlp/{self.account.lightning_address}"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The process group is the one Popen created for this LNbits (start_new_session).
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def main() -> None:
    """``python -m tests.lightning.lnbits_server``: start one and print its details (manual use)."""
    import tempfile

    server = LnbitsServer(Path(tempfile.mkdtemp(prefix="lnbits-")))
    account = server.start()
    print(f"LNbits at {server.url}\ninkey {account.inkey}\nlnurlp {server.lnurlp_url}")
    print("Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()

"""``tunnel``: the public URL read from what cloudflared and ngrok print (fakes on PATH)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from receiver.cli import main
from tests.conftest import TOKEN

CLOUDFLARED = """#!/bin/sh
echo "$@" > "$(dirname "$0")/args"
echo '2026-12-01T20:00:00Z INF Requesting new quick Tunnel on trycloudflare.com...' >&2
echo '2026-12-01T20:00:01Z INF |  https://brave-owl-example.trycloudflare.com  |' >&2
exec sleep 30
"""
NGROK = """#!/bin/sh
echo "$@" > "$(dirname "$0")/args"
echo '{"lvl":"info","msg":"starting web service","obj":"web","addr":"127.0.0.1:4040"}'
echo '{"lvl":"info","msg":"started tunnel","obj":"tunnels","name":"command_line","addr":"http://localhost:8000","url":"https://ab12-203-0-113-7.ngrok-free.app"}'
exec sleep 30
"""


def install(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}:/usr/bin:/bin")
    monkeypatch.setenv("RECEIVER_INVOICE_TOKENS", TOKEN)
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path / "data"))
    return path


@pytest.mark.parametrize(
    ("tool", "script", "url", "argv"),
    [
        (
            "cloudflared",
            CLOUDFLARED,
            "https://brave-owl-example.trycloudflare.com",
            "tunnel --no-autoupdate --url http://127.0.0.1:8123",
        ),
        (
            "ngrok",
            NGROK,
            "https://ab12-203-0-113-7.ngrok-free.app",
            "http 8123 --log stdout --log-format json",
        ),
    ],
)
def test_the_public_url_is_read_and_the_kotani_urls_printed(
    bin_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tool: str,
    script: str,
    url: str,
    argv: str,
) -> None:
    install(bin_dir, tool, script)
    assert main(["tunnel", "--once", "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert (bin_dir / "args").read_text().strip() == argv
    assert f"webhook URL           {url}/webhooks/kotani" in out
    assert f"generate_invoice_url  {url}/invoices/" in out
    assert TOKEN not in out, "the token is masked unless --show-secrets"
    assert f"simulate invoice --amount-msat 1500000 --url {url}" in out
    assert main(["tunnel", "--once", "--port", "8123", "--show-secrets"]) == 0
    assert f"{url}/invoices/{TOKEN}" in capsys.readouterr().out


def test_cloudflared_is_preferred_when_both_are_installed(
    bin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(bin_dir, "cloudflared", CLOUDFLARED)
    install(bin_dir, "ngrok", NGROK)
    assert main(["tunnel", "--once"]) == 0
    assert "trycloudflare.com" in capsys.readouterr().out
    assert main(["tunnel", "--once", "--tool", "ngrok"]) == 0
    assert "ngrok-free.app" in capsys.readouterr().out


def test_neither_installed_names_both(bin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tunnel"]) == 2
    err = capsys.readouterr().err
    assert "cloudflared or ngrok is not installed" in err
    assert "cloudflared:" in err and "ngrok:" in err and "RECEIVER_PUBLIC_URL" in err


def test_a_tool_that_prints_no_url_fails_clearly(
    bin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(bin_dir, "cloudflared", "#!/bin/sh\necho 'ERR failed to request quick Tunnel' >&2\n")
    assert main(["tunnel", "--once"]) == 1
    assert "gave no public URL" in capsys.readouterr().err

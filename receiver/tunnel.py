"""``kotani-receiver tunnel``: a public https URL for a local receiver, and the URLs to give Kotani.

Starts whichever is installed of ``cloudflared`` (a quick tunnel: ``cloudflared tunnel --url
http://127.0.0.1:PORT``, which prints ``https://<name>.trycloudflare.com`` on stderr) and
``ngrok`` (``ngrok http PORT --log stdout --log-format json``, whose JSON log lines carry the
public ``url``), reads the public URL from its output, and prints the generate_invoice_url and the
webhook URL to register with Kotani (the token masked unless ``--show-secrets``). The tunnel runs
until Ctrl-C; ``--once`` prints and stops it (scripts).
Nothing is installed or configured for you: ngrok needs its own ``ngrok config add-authtoken``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
from typing import Any

from receiver.settings import Settings

TOOLS = ("cloudflared", "ngrok")
WAIT = 30.0
_CLOUDFLARE = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com")


def command(tool: str, port: int) -> list[str]:
    if tool == "cloudflared":
        return ["cloudflared", "tunnel", "--no-autoupdate", "--url", f"http://127.0.0.1:{port}"]
    return ["ngrok", "http", str(port), "--log", "stdout", "--log-format", "json"]


def public_url(tool: str, line: str) -> str | None:
    """The public https URL in one output line of ``tool``, if it has one."""
    if tool == "cloudflared":
        found = _CLOUDFLARE.search(line)
        return found.group(0) if found else None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    url = record.get("url") if isinstance(record, dict) else None
    return url if isinstance(url, str) and url.startswith("https://") else None


def pick_tool(wanted: str | None) -> str | None:
    for tool in (wanted,) if wanted else TOOLS:
        if tool and shutil.which(tool):
            return tool
    return None


def print_urls(root: str, settings: Settings, *, show_secrets: bool) -> None:
    from receiver.tokens import mask, resolve_tokens

    tokens, _ = resolve_tokens(settings, create=False)
    print(f"public URL            {root}")
    if tokens:
        secret = tokens[0].get_secret_value()
        print(f"generate_invoice_url  {root}/invoices/{secret if show_secrets else mask(secret)}")
    else:
        print("generate_invoice_url  (no token yet: start `kotani-receiver serve` once)")
    print(f"webhook URL           {root}/webhooks/kotani")
    print(f"\n# for `urls`, `refund-config` and `check`:  RECEIVER_PUBLIC_URL={root}")
    print(f"# register it:   kotani-receiver kotani webhook register {root}/webhooks/kotani")
    print(f"# try it:        kotani-receiver simulate invoice --amount-msat 1500000 --url {root}")
    print(
        f"#                kotani-receiver simulate webhook refund.completed --reference T-1 "
        f"--url {root}"
    )


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.simulate.progress import spinner

    tool = pick_tool(args.tool)
    if tool is None:
        names = args.tool or "cloudflared or ngrok"
        print(
            f"tunnel: {names} is not installed. Install one of them:\n"
            "  cloudflared: https://developers.cloudflare.com/cloudflare-one/connections/"
            "connect-networks/downloads/ (a quick tunnel needs no account)\n"
            "  ngrok:       https://ngrok.com/download, then `ngrok config add-authtoken TOKEN`\n"
            "or give Kotani any public https URL that reaches this port and set "
            "RECEIVER_PUBLIC_URL to it.",
            file=sys.stderr,
        )
        return 2
    port = args.port or settings.port
    proc = await asyncio.create_subprocess_exec(
        *command(tool, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    url: str | None = None
    try:
        async with spinner(f"starting {tool} for port {port}"):
            async with asyncio.timeout(WAIT):
                while url is None:
                    line = await proc.stdout.readline()
                    if not line:
                        break
                    url = public_url(tool, line.decode("utf-8", "replace"))
    except TimeoutError:
        pass
    try:
        if url is None:
            print(f"tunnel: {tool} gave no public URL within {WAIT:g} s", file=sys.stderr)
            return 1
        print_urls(url, settings, show_secrets=args.show_secrets)
        if args.once:
            return 0
        print(f"\n# {tool} is running; Ctrl-C stops it", file=sys.stderr, flush=True)
        while await proc.stdout.readline():
            pass  # keep the pipe drained while the tool runs
        return 0 if await proc.wait() == 0 else 1
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def cmd_tunnel(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings))
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tunnel",
        help="expose the local receiver through cloudflared or ngrok, print the URLs for Kotani",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("--tool", choices=TOOLS, help="which one (default: the first installed)")
    p.add_argument("--port", type=int, help="local port (default RECEIVER_PORT)")
    p.add_argument("--show-secrets", action="store_true", help="print the invoice token in full")
    p.add_argument("--once", action="store_true", help="print the URLs, stop the tunnel, exit")
    p.set_defaults(func=cmd_tunnel)

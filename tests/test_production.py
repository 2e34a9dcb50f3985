"""RECEIVER_ENV=production refuses each unsafe setting with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver import production
from receiver.settings import Settings

SAFE: dict[str, Any] = {
    "env": "production",
    "backends": "lnd",
    "network": "bitcoin",
    "kotani_base_url": "production",
    "kotani_api_key": "k" * 40,
    "public_url": "https://receiver.example.com",
    "invoice_tokens": "t" * 43,
    "webhook_secrets": "whsec_" + "s" * 30,
    "api_key": "a" * 40,
}


@pytest.fixture
def build(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return lambda **changes: make_settings(**{**SAFE, **changes})


def test_a_safe_production_configuration_passes(build: Callable[..., Settings]) -> None:
    assert production.problems(build()) == []


def test_development_allows_everything(make_settings: Callable[..., Settings]) -> None:
    assert production.problems(make_settings(backends="fake", allow_unsigned=True)) == []


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"backends": "fake"}, "RECEIVER_BACKENDS"),
        ({"backends": "lnd,fake"}, "RECEIVER_BACKENDS"),
        ({"network": "regtest"}, "RECEIVER_NETWORK"),
        ({"network": "signet"}, "RECEIVER_NETWORK"),
        ({"public_url": "http://receiver.example.com"}, "RECEIVER_PUBLIC_URL"),
        ({"public_url": None}, "RECEIVER_PUBLIC_URL"),
        ({"kotani_base_url": "http://kotani.internal:8080"}, "RECEIVER_KOTANI_BASE_URL"),
        ({"allow_unsigned": True}, "RECEIVER_ALLOW_UNSIGNED"),
        ({"invoice_tokens": []}, "RECEIVER_INVOICE_TOKENS"),
        ({"invoice_tokens": "short-token-0123456789"}, "RECEIVER_INVOICE_TOKENS"),
        ({"webhook_secrets": "tiny-secret"}, "RECEIVER_WEBHOOK_SECRETS"),
        ({"api_key": "short"}, "RECEIVER_API_KEY"),
    ],
)
def test_each_unsafe_setting_is_one_line(
    build: Callable[..., Settings], changes: dict[str, Any], variable: str
) -> None:
    lines = production.problems(build(**changes))
    assert len(lines) == 1 and lines[0].startswith(f"{variable}:")
    for value in changes.values():
        if isinstance(value, str) and len(value) > 8:
            assert value not in lines[0]  # names the variable, never a secret's value


def test_regtest_is_fine_against_the_sandbox(build: Callable[..., Settings]) -> None:
    assert production.problems(build(network="regtest", kotani_base_url="sandbox")) == []


def test_loopback_http_is_not_cleartext() -> None:
    assert not production.cleartext_credentials("http://127.0.0.1:8080")
    assert not production.cleartext_credentials("http://localhost:3010")
    assert not production.cleartext_credentials("http://[::1]:80")
    assert production.cleartext_credentials("http://10.0.0.5:8080")
    assert not production.cleartext_credentials("https://10.0.0.5:8080")


def test_backend_urls_over_http_are_refused(build: Callable[..., Settings]) -> None:
    lines = production.backend_problems(
        build(), [("RECEIVER_LND_URL", "http://node.lan:8080"), ("RECEIVER_CLN_URL", "https://x")]
    )
    assert lines == [
        "RECEIVER_LND_URL: credentials would be sent over http:// to another host (use https)"
    ]


def test_serve_refuses_with_one_line_each_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(
        RECEIVER_ENV="production",
        RECEIVER_BACKENDS="fake",
        RECEIVER_NETWORK="bitcoin",
        RECEIVER_KOTANI_BASE_URL="production",
        RECEIVER_PUBLIC_URL="http://receiver.example.com",
        RECEIVER_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "RECEIVER_BACKENDS", "RECEIVER_PUBLIC_URL", "RECEIVER_INVOICE_TOKENS"
    ]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "receiver.sqlite3").exists()  # refused before anything


def test_serve_refuses_a_backend_url_over_http(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update({f"RECEIVER_{k.upper()}": str(v) for k, v in SAFE.items()})
    env.update(
        RECEIVER_BACKENDS="lnd",
        RECEIVER_LND_URL="http://10.0.0.5:8080",
        RECEIVER_LND_MACAROON="ab" * 32,
        RECEIVER_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "production: RECEIVER_LND_URL: credentials would be sent over http:// to another host"
        " (use https)"
    ]

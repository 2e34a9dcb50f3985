"""What the HTTP backends' configs and info answers share: env prefixes, the url check, networks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from receiver.lightning._http import HttpBackendConfig
from receiver.lightning.base import Network
from receiver.lightning.cln import ClnConfig
from receiver.lightning.eclair import EclairConfig
from receiver.lightning.lnaddress import LnAddressConfig
from receiver.lightning.lnbits import LnbitsConfig
from receiver.lightning.lnd import LndConfig
from receiver.lightning.phoenixd import PhoenixdConfig

SECRET = "0201036c6e6402f801030a10" + "ab" * 40

# (config class, its env prefix, the secret setting's name)
HTTP_CONFIGS = [
    (LndConfig, "RECEIVER_LND_", "MACAROON"),
    (ClnConfig, "RECEIVER_CLN_", "RUNE"),
    (LnbitsConfig, "RECEIVER_LNBITS_", "KEY"),
    (PhoenixdConfig, "RECEIVER_PHOENIXD_", "PASSWORD"),
    (EclairConfig, "RECEIVER_ECLAIR_", "PASSWORD"),
]


@pytest.mark.parametrize(("config", "prefix", "secret"), HTTP_CONFIGS)
def test_read_from_own_prefix_with_url_checked(
    monkeypatch: pytest.MonkeyPatch, config: type[HttpBackendConfig], prefix: str, secret: str
) -> None:
    assert config.model_config.get("env_prefix") == prefix
    monkeypatch.setenv(f"{prefix}URL", "https://node.test:8080/ ")
    monkeypatch.setenv(f"{prefix}{secret}", SECRET)
    monkeypatch.setenv(f"{prefix}UNRELATED", "ignored")  # extra="ignore"
    loaded = config(_env_file=None)
    assert loaded.url == "https://node.test:8080"  # type: ignore[attr-defined]

    monkeypatch.setenv(f"{prefix}URL", f"https://user:{SECRET}@node.test:8080")
    with pytest.raises(ValidationError) as caught:
        config(_env_file=None)
    assert "credentials in their own setting" in str(caught.value)
    assert SECRET not in str(caught.value)  # hide_input_in_errors

    monkeypatch.setenv(f"{prefix}URL", "ftp://node.test")
    with pytest.raises(ValidationError, match="http:// or https://"):
        config(_env_file=None)


def test_defaults_and_the_lnurl_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PhoenixdConfig(password="p", _env_file=None).url == "http://127.0.0.1:9740"
    assert EclairConfig(password="p", _env_file=None).url == "http://127.0.0.1:8080"
    monkeypatch.setenv("RECEIVER_LNADDRESS", " refunds@pay.example.com ")
    monkeypatch.setenv("RECEIVER_URL", "not read by this backend")
    assert LnAddressConfig(_env_file=None).lnaddress == "refunds@pay.example.com"


@pytest.mark.parametrize(
    ("name", "network"),
    [
        ("mainnet", Network.BITCOIN),  # LND, phoenixd, Eclair
        ("bitcoin", Network.BITCOIN),  # CLN
        ("testnet", Network.TESTNET),
        ("testnet3", Network.TESTNET),
        ("testnet4", Network.TESTNET),
        ("signet", Network.SIGNET),
        ("regtest", Network.REGTEST),
        ("Regtest", Network.REGTEST),
        ("simnet", None),
        ("", None),
    ],
)
def test_node_network_names(name: str, network: Network | None) -> None:
    assert Network.from_node_name(name) is network


@pytest.mark.parametrize(("config", "field"), [(ClnConfig, "rune"), (LnbitsConfig, "key")])
def test_credentials_are_stripped_and_never_empty(
    config: type[HttpBackendConfig], field: str
) -> None:
    loaded = config(url="https://node.test", **{field: f"  {SECRET}\n"}, _env_file=None)
    assert getattr(loaded, field).get_secret_value() == SECRET
    with pytest.raises(ValidationError, match=f"the {field} is empty"):
        config(url="https://node.test", **{field: "  "}, _env_file=None)

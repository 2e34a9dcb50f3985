"""The composition root builds one Kotani client for the whole process."""

from __future__ import annotations

from collections.abc import Callable

from receiver.app import create_app
from receiver.settings import Settings
from tests.support.server import serve_app


async def test_the_webhooks_use_the_kotani_area_client(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(kotani_api_key="kp_test_one_client_123"))
    async with serve_app(app):
        assert app.state.webhooks.kotani is app.state.kotani.client


async def test_without_an_api_key_the_webhooks_send_nothing_to_kotani(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with serve_app(app):
        assert app.state.webhooks.kotani is None

"""A local webhook receiver for the alerts tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pairstream.testing import WebhookReceiver

SECRET = "s3cret"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()

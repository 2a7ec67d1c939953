"""The fake of LiveKit's Twirp API and a real ``livekit-api`` client talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from livekit import api

from tests.fakes.livekit_server import FakeLiveKit

KEY, SECRET = "devkey", "a-development-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def lk() -> Iterator[FakeLiveKit]:
    with FakeLiveKit(api_key=KEY, api_secret=SECRET) as server:
        yield server


@pytest.fixture
async def lkapi(lk: FakeLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(url=lk.url, api_key=KEY, api_secret=SECRET)
    yield client
    await client.aclose()

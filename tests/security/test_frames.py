"""The live WebSocket answers malformed frames with an error and stays open for the next one."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie, ws_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def _next_of_type(ws, kind: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if frame["type"] == kind:
            return frame


@pytest.mark.parametrize("frame", ["this is not json {", b"\x00\xffbinary", "[1, 2"], ids=["text", "binary", "truncated"])
def test_a_frame_that_is_not_json_gets_an_error_and_the_connection_stays(live_server_url, learner, frame):
    cookie = session_cookie(learner)

    async def attempt():
        async with ws_connect(
            ws_url(live_server_url), origin=live_server_url, additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as ws:
            await _next_of_type(ws, "hello")
            await ws.send(frame)
            error = await _next_of_type(ws, "error")
            # Still serving: a well-formed but unknown request is answered on the same connection.
            await ws.send(json.dumps({"type": "no.such.type"}))
            after = await _next_of_type(ws, "error")
            return error, after

    error, after = run(attempt())
    assert "JSON" in error["message"]
    assert "no.such.type" in after["message"]

"""Round 3, case 7 in a real browser: Debian's chromium, headless, driven over the DevTools
protocol (a few commands over its websocket). The page opens with the token, the session
renders, a key press reaches it, and nothing is requested beyond the server.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")
pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1200,800"]


class Page:
    """One browser tab over the DevTools protocol: commands, and the events seen meanwhile."""

    def __init__(self, ws):
        self.ws = ws
        self.events: list[dict] = []
        self.next_id = 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    async def drain(self, seconds: float) -> None:
        try:
            while True:
                self.events.append(await asyncio.wait_for(self.ws.receive_json(), seconds))
        except asyncio.TimeoutError:
            pass

    def screen(self) -> str:
        """Everything the session sent to the page, as text."""
        out = ""
        for e in self.events:
            if e.get("method") == "Network.webSocketFrameReceived":
                frame = e["params"]["response"]
                data = frame["payloadData"]
                out += base64.b64decode(data).decode("utf-8", "replace") if frame["opcode"] == 2 else data
        return out

    async def wait_for_text(self, text: str, timeout: float = 90) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.screen() and time.monotonic() < deadline:
            await self.drain(0.5)
        return text in self.screen()

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"] + \
            [e["params"]["url"] for e in self.events if e.get("method") == "Network.webSocketCreated"]


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                yield int(found.group(1))
                break
        else:
            pytest.fail("chromium did not start its DevTools endpoint")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_case_7_a_real_browser_opens_the_session_with_the_token(served, browser):  # noqa: F811
    server = served()
    url, token = server.wait_for_url()

    async def scenario() -> Page:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{browser}/json/list") as response:
                target = next(t for t in await response.json() if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Network.enable")
                await page.call("Page.enable")
                await page.call("Page.navigate", url=url)
                assert await page.wait_for_text("1 Presets"), page.screen()[-2000:]  # the session renders
                assert "go to a panel" not in page.screen()
                await page.call("Runtime.evaluate", expression="document.querySelector('.xterm-helper-textarea').focus()")
                for kind in ("keyDown", "keyUp"):  # F1: the session's help screen
                    await page.call("Input.dispatchKeyEvent", type=kind, key="F1", code="F1",
                                    windowsVirtualKeyCode=112, nativeVirtualKeyCode=112)
                assert await page.wait_for_text("go to a panel", 60), page.screen()[-2000:]  # the key arrived
                return page

    page = asyncio.run(scenario())
    assert len(server.sessions()) == 1
    origin = f"127.0.0.1:{server.port}"
    requests = page.requests()
    assert any(r.startswith(f"ws://{origin}/ws") for r in requests)
    strangers = [r for r in requests if not re.match(rf"(?:https?|wss?)://{re.escape(origin)}/", r)
                 and not r.startswith("data:")]
    assert strangers == []  # no font, script or style from anywhere else

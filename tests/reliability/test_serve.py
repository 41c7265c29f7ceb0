"""Round 3, cases 7-9: `optui serve` is closed by default and leaves no session behind.

7. A random token, printed in the URL to open (or --token); a missing or wrong token, or a
   websocket from another page's Origin, is refused before any session process starts; at most
   --max-sessions at once; a warning on a non-loopback --host; the page's websocket goes back to
   the Host the browser used; the page requests nothing beyond the server.
8. Session processes end when their websocket closes, when the server stops (SIGTERM, SIGINT),
   and when they will not quit when asked; a session honours SIGTERM.
9. A port in use: the error alone, no banner before it.

The tests that hold sessions open and end them are marked slow.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

pytest.importorskip("textual_serve")
aiohttp = pytest.importorskip("aiohttp")
from support.serving import ROOT, URL, Served, alive, free_port, wait_until_gone  # noqa: F401


def get(url: str, headers: dict | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


async def open_session(url: str, origin: str | None = None, screen: str = "1 Presets", timeout: float = 90):
    """Connect as the page does: the handshake status if refused, else what the session drew."""
    seen = ""
    async with aiohttp.ClientSession() as client:
        try:
            ws = await client.ws_connect(url, headers={"Origin": origin} if origin else {})
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        async with ws:
            await ws.send_json(["resize", {"width": 80, "height": 24}])
            deadline = time.monotonic() + timeout
            while screen not in seen and time.monotonic() < deadline:
                try:
                    message = await ws.receive(timeout=5)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.BINARY:
                    seen += message.data.decode("utf-8", "replace")
                elif message.type != aiohttp.WSMsgType.TEXT:
                    break
    return seen


# A client held open in its own process, so the test can drop it as a crashed browser would.
HOLDER = """
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(sys.argv[1]) as ws:
            await ws.send_json(["resize", {"width": 80, "height": 24}])
            seen = ""
            while "1 Presets" not in seen:
                m = await ws.receive()
                if m.type == aiohttp.WSMsgType.BINARY:
                    seen += m.data.decode("utf-8", "replace")
            print("rendered", flush=True)
            async for m in ws:  # answers the server's heartbeat until killed
                pass
asyncio.run(main())
"""


def hold_session(ws_url: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, ws_url], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "rendered"
    return holder


# -- case 7 ----------------------------------------------------------------------------------------
def test_case_7_a_random_token_is_printed_and_required_before_any_session(served):
    server = served()
    url, token = server.wait_for_url()
    assert re.fullmatch(r"[0-9a-f]{48}", token) and url.startswith(f"http://127.0.0.1:{server.port}/")
    base = f"127.0.0.1:{server.port}"
    assert get(f"http://{base}/")[0] == 403
    assert get(f"http://{base}/?token=wrong{token}")[0] == 403
    status, headers, page = get(url)
    assert status == 200 and "optui" in page
    assert f"optui-token-{server.port}={token}" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    assert asyncio.run(open_session(f"ws://{base}/ws")) == 403
    assert asyncio.run(open_session(f"ws://{base}/ws?token=nope")) == 403
    assert server.sessions() == []  # refused before any session process started
    assert "1 Presets" in asyncio.run(open_session(f"ws://{base}/ws?token={token}"))


def test_case_7_a_set_token_and_a_bad_one(served, tmp_path):
    server = served("--token", "my-own-token")
    url, token = server.wait_for_url()
    assert token == "my-own-token" and get(url)[0] == 200
    result = subprocess.run([sys.executable, "-m", "optui.cli", "serve", "--token", "a b", "--port", str(free_port())],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "--token" in result.stderr and "Press Ctrl+C" not in result.stdout


def test_case_7_a_websocket_from_another_origin_is_refused(served):
    server = served("--token", "origin-test-token")
    server.wait_for_url()
    ws = f"ws://127.0.0.1:{server.port}/ws?token=origin-test-token"
    assert asyncio.run(open_session(ws, origin="http://evil.example")) == 403
    assert asyncio.run(open_session(ws, origin=f"http://127.0.0.1:{server.port + 1}")) == 403
    assert server.sessions() == []
    assert "1 Presets" in asyncio.run(open_session(ws, origin=f"http://127.0.0.1:{server.port}"))


@pytest.mark.slow  # sessions start and end: tens of seconds on a busy machine
def test_case_7_sessions_are_capped(served):
    server = served("--token", "cap-test-token", "--max-sessions", "1")
    url, _ = server.wait_for_url()
    ws = f"ws://127.0.0.1:{server.port}/ws?token=cap-test-token"
    holder = hold_session(ws)
    try:
        assert len(server.sessions()) == 1
        assert asyncio.run(open_session(ws)) == 503
        status, _, text = get(url)
        assert status == 503 and "all 1 sessions are in use" in text
        assert len(server.sessions()) == 1
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 60  # the slot is free again once that session has ended
    while get(url)[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_case_7_a_host_beyond_this_machine_warns_and_the_page_uses_the_browsers_host(served):
    server = served("--host", "0.0.0.0", "--token", "host-test-token")
    url, _ = server.wait_for_url()
    printed = "".join(server.out)
    assert "0.0.0.0" not in printed and f"http://127.0.0.1:{server.port}/?token=host-test-token" in printed
    warning = "".join(server.err)
    assert "warning: --host 0.0.0.0 listens beyond this machine" in warning and "ssh -L" in warning
    # A browser on another machine asks with this machine's name: the websocket goes back there.
    status, _, page = get(f"http://127.0.0.1:{server.port}/?token=host-test-token",
                          {"Host": f"gpu-box.example:{server.port}"})
    assert status == 200 and f'data-session-websocket-url="ws://gpu-box.example:{server.port}/ws"' in page
    assert "0.0.0.0" not in page


def test_case_7_the_page_requests_nothing_beyond_the_server(served):
    server = served("--token", "page-test-token")
    url, _ = server.wait_for_url()
    status, headers, page = get(url)
    assert status == 200
    assert not re.search(r"(?:https?:)?//(?!www\.w3\.org/2000/svg)[\w.-]+\.[a-z]{2,}", page), page  # no CDN
    assert "googleapis" not in page and "@font-face" in page
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"|url\("(/static/[^"]+)"\)', page):
        path = asset[0] or asset[1]
        assert get(f"http://127.0.0.1:{server.port}{path}")[0] == 200, path
    policy = headers["Content-Security-Policy"]  # the browser itself refuses anything else
    assert "default-src 'none'" in policy and "font-src 'self'" in policy
    assert headers["Referrer-Policy"] == "no-referrer"  # the token never leaves in a Referer


# -- case 8 ----------------------------------------------------------------------------------------
@pytest.mark.slow  # sessions start and end: tens of seconds on a busy machine
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_case_8_sessions_end_with_the_server(served, stop):
    server = served("--token", "stop-test-token")
    server.wait_for_url()
    ws = f"ws://127.0.0.1:{server.port}/ws?token=stop-test-token"
    holders = [hold_session(ws), hold_session(ws)]
    try:
        sessions = server.wait_for_sessions(2)
        server.proc.send_signal(stop)
        assert server.proc.wait(60) == 0
        assert wait_until_gone(sessions, 10) == []
    finally:
        for h in holders:
            h.kill()
            h.wait()


@pytest.mark.slow  # sessions start and end: tens of seconds on a busy machine
def test_case_8_a_dropped_client_ends_its_session(served):
    server = served("--token", "drop-test-token")
    server.wait_for_url()
    holder = hold_session(f"ws://127.0.0.1:{server.port}/ws?token=drop-test-token")
    session, = server.wait_for_sessions(1)
    holder.kill()  # as a browser that crashed: no close frame
    holder.wait()
    assert wait_until_gone([session], 60) == []
    assert server.proc.poll() is None  # the server goes on


@pytest.mark.slow  # sessions start and end: tens of seconds on a busy machine
def test_case_8_a_session_honours_SIGTERM(served):
    server = served("--token", "term-test-token")
    server.wait_for_url()
    holder = hold_session(f"ws://127.0.0.1:{server.port}/ws?token=term-test-token")
    try:
        session, = server.wait_for_sessions(1)
        os.kill(session, signal.SIGTERM)
        assert wait_until_gone([session], 30) == []
    finally:
        holder.kill()
        holder.wait()


def test_case_8_a_session_that_will_not_quit_is_ended(tmp_path):
    """The server asks, then SIGTERMs, then SIGKILLs: a stuck session still ends."""
    from textual_serve.download_manager import DownloadManager

    from optui.serve.sessions import SessionProcess

    stubborn = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "sys.stdout.write('__GANGLION__\\n'); sys.stdout.flush()\n"
                "time.sleep(600)\n")

    async def scenario() -> tuple[int, float]:
        async def ignore(*args):
            return None

        session = SessionProcess([sys.executable, "-c", stubborn], write_bytes=ignore, write_str=ignore,
                                 close=ignore, download_manager=DownloadManager())
        session.quit_grace, session.term_grace = 0.5, 0.5
        await session.start(80, 24)
        await asyncio.sleep(1)
        started = time.monotonic()
        await asyncio.wait_for(session.stop(), 30)
        return session.pid, time.monotonic() - started

    pid, took = asyncio.run(scenario())
    assert alive([pid]) == [] and took < 10


# -- case 9 ----------------------------------------------------------------------------------------
def test_case_9_a_port_in_use_prints_the_error_alone(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "optui.cli", "serve", "--port", str(port)], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    assert result.stdout.strip() == ""  # no banner, no URL, no "Press Ctrl+C"
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}:") and "choose another --port" in line

"""`optui serve`: the session through textual-serve, bound to localhost; its page is fetched."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("textual_serve")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = "serve-test-token"


async def session_screen(port: int, timeout: float = 60) -> str:
    """Connect as the browser page does and collect what the session draws."""
    import aiohttp

    seen = ""
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}") as ws:
            await ws.send_json(["resize", {"width": 80, "height": 24}])
            deadline = time.monotonic() + timeout
            while "1 Presets" not in seen and time.monotonic() < deadline:
                try:
                    message = await ws.receive(timeout=5)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.BINARY:
                    seen += message.data.decode("utf-8", "replace")
                elif message.type == aiohttp.WSMsgType.TEXT:
                    seen += message.data
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
    return seen


def test_serve_binds_localhost_and_serves_the_session_page(tmp_path: Path):
    (tmp_path / "presets").mkdir()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "optui.cli", "serve", "--port", str(port), "--token", TOKEN],
                            cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.monotonic() + 60, None
        while page is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server did not answer"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={TOKEN}", timeout=5) as response:
                    assert response.status == 200
                    page = response.read().decode()
            except OSError:
                time.sleep(0.3)
        assert "optui" in page and f"ws://127.0.0.1:{port}/ws" in page  # the terminal connects back here
        assert "1 Presets" in asyncio.run(session_screen(port))  # a browser tab gets a live session
        with socket.socket() as s:  # bound to the loopback address only
            s.settimeout(2)
            addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
            others = [a for a in addresses if not a.startswith("127.")]
            if others:
                assert s.connect_ex((others[0], port)) != 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_a_missing_preset(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "optui.cli", "serve", "nope.toml", "--port", str(free_port())],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "nope.toml: no such preset file" in result.stderr

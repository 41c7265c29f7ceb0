"""The HTTP server of `optui serve`: textual-serve's server, closed by default.

Every request for the page, a websocket or a download carries the token (in the URL, or in the
cookie the page sets); a websocket must also come from this server's own page (Origin), and at
most `max_sessions` run at once. All three are checked before any session process starts. The
banner with the URL to open is printed only once the port is bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from .access import TOKEN_PARAM, is_loopback, origin_allowed, token_matches, url_host
from .sessions import SessionProcess

log = logging.getLogger("textual-serve")
HERE = Path(__file__).resolve().parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HEARTBEAT_S = 15  # a client gone without closing its websocket is noticed within two of these


class SessionServer(Server):
    """Serves `argv` (the session command) to browser tabs, one process per tab."""

    def __init__(self, argv: list[str], *, host: str, port: int, token: str, max_sessions: int,
                 title: str = "optui"):
        super().__init__(" ".join(argv), host=host, port=port, title=title)
        self.argv = argv
        self.token = token
        self.max_sessions = max_sessions
        self.cookie = f"optui-token-{port}"  # cookies are shared across ports: one per server
        self.sessions: set[SessionProcess] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        self.in_use = 0  # sessions admitted, counted before the first await so none slips past the cap
        self.closing = False
        self.pages = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True)

    # -- the checks ------------------------------------------------------------------------------
    def given_token(self, request: web.Request) -> str | None:
        return request.query.get(TOKEN_PARAM) or request.cookies.get(self.cookie)

    def refuse_unless_allowed(self, request: web.Request) -> None:
        if not token_matches(self.given_token(request), self.token):
            raise web.HTTPForbidden(text="optui serve: open the URL with its token, as printed where "
                                         "`optui serve` runs (or set --token).\n")

    def refuse_when_full(self) -> None:
        if self.closing:
            raise web.HTTPServiceUnavailable(text="optui serve is stopping.\n")
        if self.in_use >= self.max_sessions:
            raise web.HTTPServiceUnavailable(
                text=f"optui serve: all {self.max_sessions} sessions are in use; close a tab, or restart "
                     f"`optui serve` with a larger --max-sessions.\n")

    @web.middleware
    async def headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Nothing but this server in the page, the token never sent on in a Referer."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if not isinstance(response, web.WebSocketResponse):
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            host = request.host
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                f"font-src 'self'; img-src 'self' data:; connect-src 'self' ws://{host} wss://{host}; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    # -- routes ----------------------------------------------------------------------------------
    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.headers])
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws", self.handle_websocket, name="websocket"),
            web.get("/download/{key}", self.handle_download, name="download"),
            web.static("/static", self.statics_path, show_index=False, name="static"),
        ])
        app.on_shutdown.append(self.on_shutdown)
        return app

    async def handle_index(self, request: web.Request) -> web.Response:
        self.refuse_unless_allowed(request)
        self.refuse_when_full()
        # The websocket goes back to the address the browser used: the Host it sent.
        scheme = "wss" if request.secure else "ws"
        page = self.pages.get_template("page.html").render(
            title=self.title, static="/static/", font_size=to_int(request.query.get("fontsize", "16"), 16),
            websocket_url=f"{scheme}://{request.host}/ws")
        response = web.Response(text=page, content_type="text/html")
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        self.refuse_unless_allowed(request)
        return await super().handle_download(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.refuse_unless_allowed(request)
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.host):
            raise web.HTTPForbidden(text=f"optui serve: a page from {origin} may not open a session here.\n")
        self.refuse_when_full()
        self.in_use += 1
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        session: SessionProcess | None = None
        try:
            await websocket.prepare(request)
            self.sockets.add(websocket)
            session = SessionProcess(self.argv, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                                     close=websocket.close, download_manager=self.download_manager,
                                     debug=self.debug)
            self.sessions.add(session)
            await session.start(to_int(request.query.get("width", "80"), 80),
                                to_int(request.query.get("height", "24"), 24))
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a malformed message, a failed start: this session ends, the server goes on
            log.exception(error)
        finally:
            if session is not None:
                await asyncio.shield(session.stop())
                self.sessions.discard(session)
            self.sockets.discard(websocket)
            self.in_use -= 1
            if not websocket.closed:
                await websocket.close()
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        await self.end_sessions()

    async def end_sessions(self) -> None:
        """End every session (quit, then SIGTERM, then SIGKILL) and close every websocket."""
        self.closing = True
        await asyncio.gather(*(s.stop() for s in list(self.sessions)), return_exceptions=True)
        await asyncio.gather(*(w.close() for w in list(self.sockets)), return_exceptions=True)

    def kill_sessions(self) -> None:
        for session in list(self.sessions):
            session.signal(signal.SIGKILL)

    # -- running ---------------------------------------------------------------------------------
    def urls(self) -> list[str]:
        """The URLs to open, token included; for a wildcard address, this machine's name too."""
        hosts = [self.host]
        if self.host in ("0.0.0.0", "::", ""):
            hosts = [socket.gethostname(), "127.0.0.1"]
        return [f"http://{url_host(h)}:{self.port}/?{TOKEN_PARAM}={self.token}" for h in hosts]

    def serve(self, debug: bool = False) -> None:
        """Listen (an OSError if the port is taken, before anything is printed), print the URL,
        and serve until SIGINT, SIGTERM or SIGHUP; then end every session. A second signal
        kills the sessions still ending."""
        self.debug = debug
        self.initialize_logging()
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_stop_signal, stop)
        self.print_banner()
        try:
            await stop.wait()
            print(f"stopping: ending {len(self.sessions)} session(s)...", flush=True)
            await self.end_sessions()
        finally:
            await runner.cleanup()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def _on_stop_signal(self, stop: asyncio.Event) -> None:
        if stop.is_set():
            self.kill_sessions()  # a second signal: do not wait for them
        stop.set()

    def print_banner(self) -> None:
        if not is_loopback(self.host):
            print(f"warning: --host {self.host} listens beyond this machine: whoever reaches port {self.port} "
                  f"and has the token can train and write files in {os.getcwd()}, and the token crosses the "
                  f"network unencrypted. Prefer the default --host 127.0.0.1 and an SSH tunnel "
                  f"(ssh -L {self.port}:127.0.0.1:{self.port} THIS-MACHINE).", file=sys.stderr, flush=True)
        print(f"optui serve: the session in a browser tab, on {os.getcwd()} "
              f"(at most {self.max_sessions} at once)\nOpen this URL (it holds the access token):", flush=True)
        for url in self.urls():
            print(f"    {url}", flush=True)
        print("Press Ctrl+C to stop; every session ends with the server.", flush=True)


def serve(argv: list[str], *, host: str, port: int, token: str, max_sessions: int) -> None:
    """Serve the session command argv until a stop signal (see SessionServer.serve)."""
    SessionServer(argv, host=host, port=port, token=token, max_sessions=max_sessions).serve()

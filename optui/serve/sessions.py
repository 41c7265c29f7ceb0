"""One session process per websocket, ended with its websocket or the server.

textual-serve starts `sh -c COMMAND` and, to stop it, asks the session to quit and waits for as
long as that takes. Here the session is started directly in its own process group, told by the
kernel to stop when the server dies (Linux), and stopped in steps: quit, then SIGTERM, then
SIGKILL, each after a grace period, so a session that cannot quit is still ended.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shlex
import signal
import sys
from typing import Any

from textual_serve.app_service import AppService

QUIT_GRACE_S = 10.0  # a session asked to quit ends a run after its current chunk
TERM_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
HIDDEN_VARIABLES = ("OPTUI_TOKEN",)  # the server's secret is none of the session's business

_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _end_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGTERM when the server's process ends."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the server ended before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


class SessionProcess(AppService):
    """textual-serve's AppService, started without a shell and always stopped."""

    def __init__(self, argv: list[str], **kwargs: Any):
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self.quit_grace = QUIT_GRACE_S
        self.term_grace = TERM_GRACE_S
        self._stopping: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        for name in HIDDEN_VARIABLES:
            environment.pop(name, None)
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        parent = os.getpid()
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._build_environment(width=width, height=height),
            start_new_session=True,  # a terminal's Ctrl-C reaches the server, which ends each session in turn
            preexec_fn=lambda: _end_with_parent(parent))
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """End the session process (once, however many callers ask) and wait for it."""
        if self._process is None:
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        process = self._process
        assert process is not None
        try:
            await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
            if process.returncode is None:
                await self.send_meta({"type": "quit"})
        except Exception:  # the pipe is gone already: the steps below still end the process
            pass
        for sig, grace in ((None, self.quit_grace), (signal.SIGTERM, self.term_grace), (signal.SIGKILL, None)):
            if sig is not None:
                self.signal(sig)
            try:
                await asyncio.wait_for(process.wait(), grace)
                break
            except asyncio.TimeoutError:
                continue
        if self._task is not None:  # the reader ends at the end of the process's output
            try:
                await asyncio.wait_for(self._task, 5)
            except asyncio.TimeoutError:
                self._task.cancel()
            self._task = None

    def signal(self, sig: int) -> None:
        """Send sig to the session's process group (the session and anything it started)."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

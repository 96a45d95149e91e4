"""Runs the local stack's processes (``python -m services``): each one's output prefixed with its
name, a service that dies restarted with backoff (and said so), SIGTERM or Ctrl-C passed to all.

A crashed model service used to take the whole stack down with it, the edge included: the person
on the call page lost the call. Now the edge stays up, its session tells the client that the
service is unavailable, and the next turn after the restart works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    restart: bool = True  # False: runs once; its failure stops the stack (the readiness check)
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    restarts: int = 0


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        out: TextIO = sys.stdout,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_seconds: float = 60.0,
        stop_seconds: float = 20.0,
    ) -> None:
        """A child that stays up ``stable_seconds`` starts over at ``first_backoff``; one that
        dies sooner waits twice as long each time, up to ``max_backoff``. On stop, children get
        SIGTERM and ``stop_seconds`` to drain, then SIGKILL."""
        self.children = list(children)
        self._env = env
        self._cwd = cwd
        self._out = out
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._stable_seconds = stable_seconds
        self._stop_seconds = stop_seconds
        self._stopping = asyncio.Event()
        self.exit_code = 0
        self._width = max(len(child.name) for child in self.children)

    def say(self, name: str, line: str) -> None:
        self._out.write(f"{name:<{self._width}} | {line}\n")
        self._out.flush()

    def stop(self, exit_code: int = 0) -> None:
        if not self._stopping.is_set():
            self.exit_code = exit_code
            self._stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            return await self._run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _run(self) -> int:
        keepers = [asyncio.create_task(self._keep(child), name=f"keep-{child.name}") for child in self.children]
        await self._stopping.wait()
        self.say("stack", "stopping every service")
        for child in self.children:
            self._signal(child, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._stop_seconds):
                await asyncio.gather(*keepers, return_exceptions=True)
        for child in self.children:
            self._signal(child, signal.SIGKILL)
        await asyncio.gather(*keepers, return_exceptions=True)
        return self.exit_code

    @staticmethod
    def _signal(child: Child, sig: signal.Signals) -> None:
        if child.process is not None and child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(sig)

    async def _keep(self, child: Child) -> None:
        backoff = self._first_backoff
        while not self._stopping.is_set():
            started = time.monotonic()
            # A session of its own: Ctrl-C in the terminal reaches the supervisor only, which
            # then stops the children in order instead of all of them at once.
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
            self.say(child.name, f"started, pid {child.process.pid}")
            await self._relay(child)
            code = await child.process.wait()
            if self._stopping.is_set():
                self.say(child.name, f"stopped (exit code {code})")
                return
            if not child.restart:
                if code != 0:
                    self.say(child.name, f"failed (exit code {code}); stopping the stack")
                    self.stop(code)
                return
            if time.monotonic() - started >= self._stable_seconds:
                backoff = self._first_backoff
            child.restarts += 1
            self.say(child.name, f"exited with code {code}; restarting it in {backoff:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)  # the backoff, cut short by a stop
            backoff = min(backoff * 2, self._max_backoff)

    async def _relay(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        while line := await child.process.stdout.readline():
            self.say(child.name, line.decode(errors="replace").rstrip("\n"))


def run(children: Sequence[Child], cwd: str) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return asyncio.run(Supervisor(children, env=env, cwd=cwd).run())

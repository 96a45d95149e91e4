"""The launcher's supervisor, on small real processes: a service that dies is restarted with a
growing backoff and said so; the readiness check failing stops the stack; a stop ends them all."""

from __future__ import annotations

import asyncio
import io
import sys

from services.supervisor import Child, Supervisor


class WatchedOutput(io.StringIO):
    """The supervisor's output, with an event set once ``wanted`` has been written ``times`` times."""

    def __init__(self, wanted: str, times: int) -> None:
        super().__init__()
        self.seen = asyncio.Event()
        self._wanted, self._times = wanted, times

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count(self._wanted) >= self._times:
            self.seen.set()
        return written


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_service_that_dies_is_restarted_with_backoff_and_the_rest_go_on() -> None:
    out = WatchedOutput("crash  | exited with code 3", times=4)
    crasher = Child("crash", _python("print('up'); raise SystemExit(3)"))
    steady = Child("steady", _python("import time; print('steady up', flush=True); time.sleep(60)"))
    supervisor = Supervisor([crasher, steady], out=out, first_backoff=0.05, max_backoff=0.2, stop_seconds=5)
    running = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(out.seen.wait(), 20)
    assert crasher.restarts >= 4
    assert steady.process is not None and steady.process.returncode is None, "the others stay up"
    supervisor.stop()
    assert await asyncio.wait_for(running, 10) == 0
    log = out.getvalue()
    assert "crash  | exited with code 3; restarting it in 0.05 s" in log
    assert "restarting it in 0.1 s" in log and "restarting it in 0.2 s" in log, "the backoff grows to its cap"
    assert "crash  | up" in log and "steady | steady up" in log, "output is prefixed with each name"
    assert steady.process.returncode is not None, "stopping ends every child"


async def test_a_failed_readiness_check_stops_the_stack_with_its_code() -> None:
    out = io.StringIO()
    service = Child("svc", _python("import time; time.sleep(60)"))
    ready = Child("ready", _python("raise SystemExit(1)"), restart=False)
    code = await asyncio.wait_for(Supervisor([service, ready], out=out, stop_seconds=5).run(), 20)
    assert code == 1
    assert "ready | failed (exit code 1); stopping the stack" in out.getvalue()
    assert service.process is not None and service.process.returncode is not None

"""The language model's threads yield to the other services' work on a shared box: the engine
thread and the torch workers it starts run at --engine-niceness (5) lower OS priority, the rest
of the service (gRPC, the recogniser's foreground workers) at the service's own."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import ServiceProcess


def niceness(task: Path) -> int:
    # /proc/<pid>/task/<tid>/stat: "tid (comm) state ..."; nice is field 19, the 17th after comm.
    return int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_engine_threads_run_below_the_service(llm_service: ServiceProcess) -> None:
    pid = llm_service.process.pid
    threads = {int(task.name): niceness(task) for task in Path(f"/proc/{pid}/task").iterdir()}
    base = threads[pid]  # the main thread: gRPC and the event loop
    engine = [tid for tid, nice in threads.items() if nice == base + 5]
    # The engine thread and torch's OpenMP workers (one per core, the engine thread among them).
    assert len(engine) >= min(2, os.cpu_count() or 1), threads
    assert set(threads.values()) <= {base, base + 5}, threads
    # The recogniser's workers are processes of their own: the foreground ones at the service's
    # priority, the one for partial transcripts at --asr-background-niceness (10).
    children = [
        child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]
    assert sorted(niceness(Path(f"/proc/{child}")) for child in children).count(base) >= 2, children
    assert {niceness(Path(f"/proc/{child}")) for child in children} <= {base, min(19, base + 10)}

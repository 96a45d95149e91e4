"""What each of the soak's abusers costs each process, alone against an idle stack.

    .venv/bin/python -m bench.abuser_cost [--seconds 60] [idle piler leaver slow]

Loopback only, the bundled models. For each kind in turn, runs bench.soak's abuser(s) for
--seconds and prints the CPU each process used as a share of one core (from /proc/<pid>/stat
before and after) and the errors the abusers saw: ``idle`` (nothing), ``piler`` (2.9 MB input
items, never a response), ``leaver`` (a long reply begun and dropped again and again), ``slow``
(four clients asking for long replies and never reading).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.soak import Tally, leaver, piler, slow_reader
from tests.support.processes import running_stack

KINDS = ("idle", "piler", "leaver", "slow")


async def run(kind: str, url: str, seconds: float, tally: Tally) -> None:
    deadline = time.monotonic() + seconds
    if kind == "idle":
        await asyncio.sleep(seconds)
    elif kind == "piler":
        await piler(url, tally, deadline)
    elif kind == "leaver":
        await leaver(url, tally, deadline)
    else:
        await asyncio.gather(*(slow_reader(url, deadline) for _ in range(4)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("kinds", nargs="*", help=f"of {', '.join(KINDS)} (default: all, in that order)")
    args = parser.parse_args()
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown abuser kind(s): {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
    args.kinds = args.kinds or list(KINDS)
    with running_stack() as services:
        print("abuser     wall  " + "".join(f"{name:>8}" for name in services) + "  errors the abusers saw")
        for kind in args.kinds:
            tally = Tally()
            before, started = {name: service.cpu_seconds() for name, service in services.items()}, time.monotonic()
            await run(kind, services["edge"].url, args.seconds, tally)
            wall = time.monotonic() - started
            shares = {name: (service.cpu_seconds() - before[name]) / wall for name, service in services.items()}
            print(
                f"{kind:<9} {wall:4.0f} s "
                + "".join(f"{share:8.0%}" for share in shares.values())
                + f"  {dict(tally.abuser_errors) or 'none'}",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())

"""`make bench-compare` stays runnable with one command: one spoken question to Parley and to
Pipecat 1.14's own pipeline (bench/pipecat_bot.py in .venv-compare), both answered aloud."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

COMPARE_SECONDS = 600  # both stacks' start and one question each, on two busy cores


@pytest.mark.timeout(COMPARE_SECONDS + 60)  # the suite's 300 s would cut the run short
def test_one_question_answered_by_both() -> None:
    python = os.environ.get("PARLEY_COMPARE_PYTHON", str(REPO_ROOT / ".venv-compare" / "bin" / "python"))
    if not Path(python).exists():
        pytest.fail(f"no comparison venv at {python}: run `make compare-install` (make test does)")
    completed = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--pipecat-python", python, "--questions", "1", "--warmup", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=COMPARE_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answered = dict(
        re.findall(r"^  (parley server_vad|parley semantic_vad|pipecat) .* answered (\d+/\d+)$", completed.stdout, re.M)
    )
    assert answered == {"parley server_vad": "1/1", "parley semantic_vad": "1/1", "pipecat": "1/1"}, completed.stdout
    # Each heard the question and answered it in words (the per-question lines: heard -> said).
    for system in answered:
        line = next(line for line in completed.stdout.splitlines() if line.startswith("q 1 " + system + " "))
        heard, said = re.search(r"'(.*)' -> '(.*)'$", line).groups()  # type: ignore[union-attr]
        assert "France" in heard and said, line
    assert re.search(r"ratio parley server_vad / pipecat: \d+\.\d\d", completed.stdout), completed.stdout

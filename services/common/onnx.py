"""onnxruntime sessions as the services run them: on CPU, ``threads`` threads for one call and
no parallelism between operators (the services run calls side by side on their own threads).

Imported only by the services that use onnxruntime (VAD, TTS)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime


def cpu_session(path: Path, threads: int = 1) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

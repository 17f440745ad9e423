"""onnxruntime session options tuned for one-frame-at-a-time latency, in one place.

Export's parity check and timing (models) and the player's engine (realtime) must run models
the same way, or the figures export prints would not be the ones players get.
"""

from __future__ import annotations

from typing import Any


def session_options(threads: int = 1) -> Any:
    """Sequential execution, ``threads`` intra-op threads (1 is fastest on a busy 2-core CPU),
    all graph optimisations, warnings silenced."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so

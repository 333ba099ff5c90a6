"""Process-wide counts of XLA compilations, read from `jax.monitoring` events, so that a loop can log how many
programs it compiled (a run whose shapes are bucketed compiles a bounded number; a count that keeps growing means
a shape or a static argument changes every step).

The counter is the one piece of process state here: JAX's compile events are process-wide, and a listener cannot
be removed through the public API, so it is registered once, on first use.
"""

from __future__ import annotations

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_totals = {"compiles": 0, "compile_seconds": 0.0}
_listening = False


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    del kwargs
    if event == BACKEND_COMPILE_EVENT:
        _totals["compiles"] += 1
        _totals["compile_seconds"] += seconds


def compile_totals() -> dict[str, float]:
    """{'compiles': XLA backend compilations so far in this process, 'compile_seconds': their total time}; starts
    counting on the first call (compilations before it are not seen; persistent-cache hits are not compilations)."""
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening = True
    return dict(_totals)

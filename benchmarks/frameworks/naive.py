"""The naive logging loop: the raw loop plus every step's loss to CSV via ``.item()``.

The issue measures it at ~1.3x the raw loop: the cost a user pays for logging done the
obvious way (a host sync per step). It runs as the "typical" variant only, no checkpoint.
"""

from __future__ import annotations

from spec import Fit, RunSpec

from frameworks.raw import build_loop


def build(spec: RunSpec) -> Fit:
    return build_loop(spec, log_csv=True, checkpoint=False)

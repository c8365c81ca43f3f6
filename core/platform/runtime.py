"""Process start-up tuning shared by Herald's long-lived processes."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Keep what start-up built out of the garbage collector's scans.

    botocore's service models, pydantic's validators, FastAPI's routes and the templates are
    hundreds of thousands of objects that live as long as the process. Every full collection
    would walk them all again, and a busy process makes one every few tens of thousands of
    allocations: under load that was about 8% of the API's CPU (docs/benchmarks.md).
    `gc.freeze` moves them where the collector never looks; garbage made later is collected
    as before. Call it once the process has built its clients and handlers.
    """
    gc.collect()
    gc.freeze()

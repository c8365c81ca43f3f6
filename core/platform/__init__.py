"""What every Herald process runs on: its settings (`settings`, the one place tunables are
read), JSON logs with masked addresses (`logs`, `masking`), Prometheus metrics, traces,
the delivery error taxonomy notifiers raise (`errors`), and finding a local stack's
settings from any terminal (`local_stack`).

May import `core.catalogue` only.
"""

"""Channel notifiers: one module per channel, each speaking only `core.platform.errors` to
its caller.

`notifiers.registry.build_notifiers` is the one place they are constructed.
"""

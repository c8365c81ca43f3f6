"""Herald's shared core: settings, AWS clients, models, the event catalogue and the status store.

Every other package imports from here; this package imports none of them.
"""

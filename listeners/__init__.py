"""Long-running consumers: the router, the channel workers and the reconciler."""

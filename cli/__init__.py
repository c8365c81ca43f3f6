"""The `herald` command: every operator tool behind one entry point."""

"""Benchmarks: `make bench` runs `python -m bench.run` and writes docs/benchmarks.md;
`make bench-full` runs it with `--full` (the long runs at full size too)."""

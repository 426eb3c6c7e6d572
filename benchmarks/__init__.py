"""Benchmark harness for batchgate: `python -m benchmarks.run [--smoke] [--only NAME ...] [--skip-ray]`."""

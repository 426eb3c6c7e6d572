"""batchgate: a batch submission gateway with a Kyuubi-compatible REST API."""

__version__ = "0.1.0"

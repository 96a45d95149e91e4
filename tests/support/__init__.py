"""Helpers shared by the integration tests and the benchmarks: real processes, real audio."""

"""Benchmarks: `python -m bench.run` (make bench) runs them all into bench/results.json."""

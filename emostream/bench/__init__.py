"""Benchmarks of the runtime (``emostream bench``)."""

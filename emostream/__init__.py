"""emostream: a real-time streaming emotional talking-head avatar engine."""

__version__ = "0.1.0"

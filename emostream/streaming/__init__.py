"""Transports and I/O: audio decoding, sources, sinks, WebRTC."""

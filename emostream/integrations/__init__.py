"""Optional integrations with third-party frameworks (Pipecat, LiveKit, Ray).

Each lives in its own module here, imports its framework (an optional extra), and may use the
transports in :mod:`emostream.streaming`. Nothing below this layer imports ``pipecat``, ``livekit``
or ``ray``; import-linter's contracts in ``pyproject.toml`` enforce it."""

"""Optional integrations with third-party frameworks (Pipecat, LiveKit, Ray).

Each lives in its own module here, imports its framework (an optional extra), and may use the
transports in :mod:`emostream.streaming`. Nothing below this layer imports ``pipecat``, ``livekit``
or ``ray``; import-linter's contracts in ``pyproject.toml`` enforce it.

- ``emostream.integrations.pipecat``: ``EmostreamVideoService``, a Pipecat frame processor
  (``pip install "emostream[pipecat]"``).
- ``emostream.integrations.pipecat_bot``: the local talking bot behind ``emostream agent``.
- ``emostream.integrations.livekit``: a LiveKit Agents ``VideoGenerator``, the avatar worker and
  the agent-side ``AvatarSession`` (``pip install "emostream[livekit]"``).
- ``emostream.integrations.audio_out``: the session's audio at a transport's rate, per frame.
"""

"""Adapters to voice-agent frameworks and scale-out (optional extras; the core never imports them).

- ``emostream.integrations.pipecat``: ``EmostreamVideoService``, a Pipecat frame processor
  (``pip install "emostream[pipecat]"``).
- ``emostream.integrations.pipecat_bot``: the local talking bot behind ``emostream agent``.
- ``emostream.integrations.livekit``: a LiveKit Agents ``VideoGenerator``, the avatar worker and
  the agent-side ``AvatarSession`` (``pip install "emostream[livekit]"``).
"""

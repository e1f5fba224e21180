"""Real-time runtime: features, VAD, motion sampler, sessions."""

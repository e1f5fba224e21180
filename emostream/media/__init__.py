"""Media I/O, the floor above the data modules: audio decoding and resampling
(:mod:`emostream.media.audio`) and portrait image decoding (:mod:`emostream.media.image`).

Everything above reads files through here: the engine, the renderers, the transports and training."""

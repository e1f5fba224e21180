"""Applications of the engine: offline rendering to a file (:mod:`emostream.apps.render_video`) and
describing input files (:mod:`emostream.apps.probe`). The CLI and the benchmarks sit beside them."""

"""Applications of the engine: offline rendering to a file. The CLI and the benchmarks sit beside them."""

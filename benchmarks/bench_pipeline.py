"""Latency benchmark of the runtime; prints the JSON of ``emostream bench``.

python benchmarks/bench_pipeline.py [--device cpu|cuda] [--renderer analytic|fomm]
    [--size 256|512] [--json out.json] [--plot out.png] [--quick]
"""

from __future__ import annotations

import sys

from emostream.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])

"""Regenerate the README's benchmark table from ``emostream bench --json`` results.

    python benchmarks/update_readme.py README.md out/bench.json [out/bench512.json ...]

Writes only between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; one table column per
result (CPU 256², CPU 512², ...); the GPU column reads "not measured" unless a CUDA result is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emostream.bench.readme import update_readme
from emostream.errors import EmostreamError, InputError


def load(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(data, dict) or "stages_ms" not in data:
        raise InputError(f"{path}: not an `emostream bench` result (no 'stages_ms')")
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("readme", type=Path, help="README with the bench markers.")
    ap.add_argument("results", type=Path, nargs="+", help="`emostream bench --json` files.")
    a = ap.parse_args()
    try:
        update_readme(a.readme, [load(p) for p in a.results])
    except EmostreamError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

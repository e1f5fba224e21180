"""How well pocketsphinx finds pauses, on speech whose phones are known: synthetic corpus
utterances (the speech engine's own timings are the truth) aligned to their text the way the
real-speech engine aligns Asterisk's prompts, with and without ``tighten_pauses``.

    .venv/bin/python benchmarks/bench_alignment.py --data data/corpus-full [--split val] [--limit 200]

Prints JSON per variant ("raw": pause edges as pocketsphinx put them, "tightened"): over 10 ms
frames, the precision and recall of "pause" against the truth; and over the aligned pauses
longer than the lip metric's ``SILENCE_MIN_S``, the share whose interior (``REST_MARGIN_S``
trimmed at each end, as ``eval lip`` scores it) holds no truth speech, and the share of the
truth's long pauses whose interior an aligned long pause overlaps. Utterances pocketsphinx cannot
align are counted in ``failed``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from emostream.config import SAMPLE_RATE
from emostream.training.corpus import load_corpus
from emostream.training.engines.real import RealEngine
from emostream.training.eval_lip import rest_interiors
from emostream.training.pauses import FRAME, tighten_pauses
from emostream.training.schema import Phone

FRAMES_PER_S = SAMPLE_RATE // FRAME  # the 10 ms frames as a frame rate, for ``rest_interiors``


def pause_frames(phones: Sequence[Phone], n_frames: int) -> np.ndarray:
    """bool[n_frames]: the 10 ms frames whose middle sample lies in a pause."""
    mid = np.arange(n_frames) * FRAME + FRAME // 2
    out = np.zeros(n_frames, bool)
    for p in phones:
        if p.viseme == "sil":
            out[(mid >= p.start) & (mid < p.end)] = True
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="corpus folder (emostream data build)")
    ap.add_argument("--split", default="val", help="synthetic split to align (default val)")
    ap.add_argument("--limit", type=int, default=200, help="utterances, taken evenly over the split")
    args = ap.parse_args()
    utts = [u for u in load_corpus(args.data, split=args.split) if u.engine != "real"]
    utts = utts[:: max(1, len(utts) // args.limit)][: args.limit]
    engine = RealEngine()
    keys = ("tp", "fp", "fn", "long", "long_clean", "truth_long", "truth_long_found")
    counts = {v: dict.fromkeys(keys, 0) for v in ("raw", "tightened")}
    failed = 0
    for u in tqdm(utts, desc="align", unit="utt", file=sys.stderr):
        try:
            raw = engine.align(u.audio, u.text)
        except RuntimeError:
            failed += 1
            continue
        n = len(u.audio) // FRAME
        truth = pause_frames(u.phones, n)
        speech = ~truth
        for name, phones in (("raw", raw), ("tightened", tighten_pauses(raw, u.audio))):
            c = counts[name]
            got = pause_frames(phones, n)
            c["tp"] += int((got & truth).sum())
            c["fp"] += int((got & ~truth).sum())
            c["fn"] += int((~got & truth).sum())
            found = rest_interiors(phones, len(u.audio), FRAMES_PER_S, n)
            for a, b in found:
                c["long"] += 1
                c["long_clean"] += not speech[a:b].any()
            for a, b in rest_interiors(u.phones, len(u.audio), FRAMES_PER_S, n):
                c["truth_long"] += 1
                c["truth_long_found"] += any(x < b and a < y for x, y in found)
    out: dict[str, object] = {
        "data": args.data, "split": args.split, "utterances": len(utts), "failed": failed,
    }  # fmt: skip

    def share(k: int, n: int) -> float | None:
        return round(k / n, 4) if n else None

    for name, c in counts.items():
        out[name] = {
            "pause_precision": round(c["tp"] / max(1, c["tp"] + c["fp"]), 4),
            "pause_recall": round(c["tp"] / max(1, c["tp"] + c["fn"]), 4),
            "long_pauses": c["long"],
            "long_pauses_clean": share(c["long_clean"], c["long"]),
            "truth_long_pauses": c["truth_long"],
            "truth_long_found": share(c["truth_long_found"], c["truth_long"]),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""One utterance as a picture: waveform, phones on a time line, the main ARKit curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostream.arkit import BLENDSHAPE_INDEX, HEAD_SLICE
from emostream.config import SAMPLE_RATE
from emostream.training.schema import Utterance

_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jaw / lips", ("jawOpen", "mouthClose", "mouthPucker", "mouthFunnel")),
    ("smile / frown", ("mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthStretchLeft")),
    ("brows", ("browInnerUp", "browDownLeft", "browOuterUpLeft", "noseSneerLeft")),
    ("eyes", ("eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeSquintLeft")),
)


def plot_utterance(utt: Utterance, out: str | Path) -> Path:
    # deferred: matplotlib (heavy), only when plotting
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib.pyplot, once the headless Agg backend is chosen
    import matplotlib.pyplot as plt

    duration = len(utt.audio) / SAMPLE_RATE
    fig, axes = plt.subplots(7, 1, figsize=(13, 14), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 0.6, 1, 1, 1, 1, 1]})  # fmt: skip
    t_audio = np.arange(len(utt.audio)) / SAMPLE_RATE
    axes[0].plot(t_audio, utt.audio, lw=0.4, color="0.3")
    axes[0].set_ylabel("audio")
    axes[0].set_title(
        f"{utt.uid} · {utt.engine}/{utt.voice} · {utt.emotion.name} {utt.emotion.intensity:.2f} "
        f"· {utt.split}\n{utt.text[:110]}", fontsize=9,
    )  # fmt: skip
    ax = axes[1]
    for k, p in enumerate(utt.phones):
        s, e = p.start / SAMPLE_RATE, p.end / SAMPLE_RATE
        ax.axvspan(s, e, color="0.92" if p.viseme == "sil" else ("C0" if k % 2 else "C9"), alpha=0.6)
        if p.viseme != "sil":
            ax.text((s + e) / 2, 0.5, p.phone, ha="center", va="center", fontsize=6)
            axes[0].axvline(s, color="C3", lw=0.3, alpha=0.5)
    ax.set_yticks([])
    ax.set_ylabel("phones")
    t = (np.arange(len(utt.targets)) + 0.5) / utt.fps
    for ax, (title, names) in zip(axes[2:6], _PANELS, strict=True):
        for name in names:
            ax.plot(t, utt.targets[:, BLENDSHAPE_INDEX[name]], label=name, lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(title)
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    head = np.degrees(utt.targets[:, HEAD_SLICE])
    for k, name in enumerate(("yaw", "pitch", "roll")):
        axes[6].plot(t, head[:, k], label=name, lw=1)
    axes[6].set_ylabel("head (deg)")
    axes[6].legend(loc="upper right", fontsize=7, ncol=3)
    axes[6].set_xlabel("seconds")
    axes[6].set_xlim(0, duration)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

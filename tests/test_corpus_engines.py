"""Bad input: a missing engine is skipped with a warning naming its package; Live Link
folders that cannot be read give a clear error; a valid take imports."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from emostream.errors import InputError
from emostream.training.corpus import build_corpus, load_corpus


def test_missing_engine_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "flite" else real_which(name, *a, **k)
    )
    result = build_corpus(tmp_path / "c", preset="ci", engines=["flite", "espeak"], progress=False)
    assert set(result.skipped) == {"flite"}
    assert "Debian package `flite`" in result.skipped["flite"]
    err = capsys.readouterr().err
    assert "skipping speech engine 'flite'" in err and "`flite`" in err
    assert result.manifest["engines"] == ["espeak"]
    assert {u.engine for u in load_corpus(tmp_path / "c")} == {"espeak"}


def test_livelink_folder_errors(tmp_path: Path) -> None:
    from emostream.training.livelink_import import import_livelink

    with pytest.raises(InputError, match="Live Link folder not found"):
        import_livelink(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "file.csv").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        import_livelink(tmp_path / "file.csv", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no Live Link Face CSV recordings \(\*\.csv\)"):
        import_livelink(empty, tmp_path / "out")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "take.csv").write_text("Timecode\n")
    with pytest.raises(InputError, match=r"take\.csv: no audio next to this recording"):
        import_livelink(lonely, tmp_path / "out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        if _unreadable(locked):  # (as root, permissions do not apply)
            with pytest.raises(InputError, match="Live Link folder is not readable"):
                import_livelink(locked, tmp_path / "out")
    finally:
        locked.chmod(0o755)


def _unreadable(p: Path) -> bool:
    try:
        list(p.iterdir())
    except PermissionError:
        return True
    return False  # running as root: permissions do not apply


def test_livelink_take_imports(tmp_path: Path) -> None:
    from emostream.arkit import EmotionStyle
    from emostream.livelink import write_livelink_csv
    from emostream.training.livelink_import import import_livelink

    rng = np.random.default_rng(0)
    src = tmp_path / "takes"
    src.mkdir()
    n = 16000 * 2
    t = np.arange(n) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    with wave.open(str(src / "take1.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    motion = rng.uniform(0, 1, (40, 55)).astype(np.float32)
    motion[:, 52:] = 0.1
    write_livelink_csv(src / "take1.csv", motion, 25)
    (src / "take1_cal.csv").write_text("calibration, ignored")
    m = import_livelink(src, tmp_path / "out", emotion=EmotionStyle("sad", 0.5), phones=False)
    assert m["utterances"] == 1
    (u,) = list(load_corpus(tmp_path / "out"))
    assert u.engine == "livelink" and u.split == "train_real" and u.emotion.name == "sad"
    assert u.targets.shape == (50, 55)  # 2 s at 25 fps: the last recorded pose is held
    np.testing.assert_allclose(u.targets[:40], motion, atol=1e-5)
    np.testing.assert_allclose(u.targets[45], motion[-1], atol=1e-5)


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian flite (scripts/apt-packages.txt)")
def test_recognize_phones_aligns_a_transcript(tmp_path: Path) -> None:
    """Live Link takes with a transcript are force-aligned; an unalignable one is a clear error."""
    import subprocess

    from emostream.streaming.audio_io import load_audio
    from emostream.training.livelink_import import recognize_phones

    text = "give me one photo and a voice and i will talk back"
    wav = tmp_path / "s.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True, timeout=60)
    audio = load_audio(wav)
    phones = recognize_phones(audio, text)
    spoken = [p for p in phones if p.phone != "sil"]
    assert len(spoken) > 25
    assert {p.viseme for p in spoken} >= {"PP", "aa", "kk"}  # "me", "talk", "give"
    assert all(0 <= p.start < p.end <= len(audio) for p in phones)
    for bad in ("give me one emostream", text):  # a word not in the dictionary; silence for speech
        with pytest.raises(InputError, match="could not align the transcript"):
            recognize_phones(audio if "emostream" in bad else np.zeros(16000, np.float32), bad)

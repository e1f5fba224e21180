"""The ci corpus builds from every engine, loads, passes `data check`, is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emostream.arkit import EMOTIONS
from emostream.config import SAMPLE_RATE, frames_covering
from emostream.engine.vad import speech_probs
from emostream.training.check import alignment, check_corpus
from emostream.training.corpus import build_corpus, load_corpus, read_manifest
from emostream.training.engines import ENGINE_NAMES
from emostream.training.phones import PHONE_TO_VISEME, make_phone
from emostream.training.schema import SPLITS, Utterance


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "ci"
    build_corpus(root, preset="ci", seed=0, workers=2, progress=False)
    return root


def test_manifest_covers_every_engine_emotion_and_split(corpus: Path) -> None:
    m = read_manifest(corpus)
    assert m["skipped_engines"] == {}
    assert set(m["hours_by_engine"]) == set(ENGINE_NAMES)
    assert {k.split(":")[0] for k in m["hours_by_emotion"]} == set(EMOTIONS)
    assert set(m["hours_by_split"]) == set(SPLITS)
    assert all(m["licences"][e] for e in ENGINE_NAMES)
    assert m["command"] == "emostream data build --preset ci --seed 0"
    utts = list(load_corpus(corpus))
    assert len(utts) == m["utterances"] and m["failures"] == []
    for u in utts:
        assert u.audio.dtype == np.float32 and u.fps == 25
        assert u.targets.shape == (frames_covering(len(u.audio), 25), 55)
        assert all(p.viseme == PHONE_TO_VISEME[p.phone] for p in u.phones)
    assert {u.engine for u in utts if u.split == "test_real"} == {"real"}


def test_splits_filter_and_held_out_prompts_never_trained_on(corpus: Path) -> None:
    test = list(load_corpus(corpus, "test_real"))
    train = list(load_corpus(corpus, "train_real"))
    assert test and train and all(u.split == "test_real" for u in test)
    assert not {u.voice + u.text for u in test} & {u.voice + u.text for u in train}


def test_data_check_passes(corpus: Path) -> None:
    report = check_corpus(corpus)
    assert report["problems"] == []
    assert report["utterances"] == read_manifest(corpus)["utterances"]
    assert report["real_speech_hours"] > 0
    assert set(report["by_emotion"]) == set(EMOTIONS)
    for engine, coverage in report["vad_speech_coverage"].items():
        assert coverage >= 0.85, engine


def test_phone_timings_match_the_audio_and_a_shift_is_caught(corpus: Path) -> None:
    """VAD's speech frames cover the speech phones; phones left 1 s early are caught."""
    for u in load_corpus(corpus):
        assert u.phones[0].start == 0 and u.phones[-1].end == len(u.audio)
        probs = speech_probs(u.audio, u.fps)
        assert alignment(u, probs).speech_coverage >= 0.75, u.uid
    u = min(load_corpus(corpus, "train"), key=lambda x: abs(len(x.audio) - 2 * SAMPLE_RATE))
    shift = SAMPLE_RATE
    audio = np.concatenate([np.zeros(shift, np.float32), u.audio])  # speech moves later...
    phones = [*u.phones, make_phone(len(u.audio), len(audio), "sil")]  # ...phones stay put
    targets = np.zeros((frames_covering(len(audio), 25), 55), np.float32)
    shifted = Utterance(**{**u.__dict__, "audio": audio, "phones": phones, "targets": targets})
    assert alignment(shifted, speech_probs(audio, 25)).speech_coverage < 0.8


def test_same_seed_same_bytes_other_seed_differs(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_corpus(again, preset="ci", seed=0, workers=1, engines=["piper", "real"], progress=False)
    ref = {e["engine"]: (corpus / e["file"]).read_bytes() for e in read_manifest(corpus)["shards"]}
    new = {e["engine"]: (again / e["file"]).read_bytes() for e in read_manifest(again)["shards"]}
    assert new["piper"] == ref["piper"] and new["real"] == ref["real"]
    other = tmp_path / "other"
    build_corpus(other, preset="ci", seed=1, workers=1, engines=["espeak"], progress=False)
    assert (other / "shards/00000.npz").read_bytes() != ref["espeak"]


def _run(args: list[str]) -> int:
    from emostream.cli import main

    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_cli_check_json_and_show_png(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["data", "check", str(corpus), "--json", "--no-vad"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"hours", "utterances", "by_engine", "by_emotion", "real_speech_hours", "problems"}
    png = tmp_path / "p.png"
    assert _run(["data", "show", str(corpus), "--uid", "piper-000001", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _run(["data", "show", str(corpus), "--uid", "nope", "-o", str(png)]) == 2
    assert "no utterance with uid 'nope'" in capsys.readouterr().err

"""Lip refiner ensemble: averaging, streaming invariance, ONNX parity, checkpoints, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_lip import chunked_refine, tiny_lip_corpus

from emostream.arkit import MOTION_DIM, MOUTH_SLICE
from emostream.engine.lip import LipRefiner, StyleRef
from emostream.errors import CheckpointError, ConfigError
from emostream.models.lip_ensemble import LipEnsemble, LipEnsembleConfig, load_lip_net, save_lip_ensemble
from emostream.models.lip_refiner import LipRefiner as Net
from emostream.models.lip_refiner import LipRefinerConfig, closure_gate, save_lip_checkpoint

F, T = 24, 70


def _net(seed: int, layers: int = 2, style_dim: int = 8, lookahead: int = 2) -> Net:
    torch.manual_seed(seed)
    net = Net(LipRefinerConfig(feature_dim=F, hidden=32, lstm_layers=layers, style_dim=style_dim,
                               cnn_channels=16, head_hidden=32, lookahead_frames=lookahead,
                               prior_input=True))  # fmt: skip
    with torch.no_grad():
        net.feat_mean.uniform_(-0.5, 0.5)
        net.feat_std.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.standard_normal((T, F)).astype(np.float32), rng.uniform(0, 1, (T, MOTION_DIM)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def ens() -> LipEnsemble:
    """Members of different depth and style width: the stacked state and split style must line up."""
    return LipEnsemble.of([_net(0), _net(1, layers=1, style_dim=6), _net(2)], gate_scale=1.5, gate_bias=2.0)


def test_identical_members_give_the_member(data):
    """Two copies of one net average to that net: same mouth as the single refiner, same gate."""
    feats, motion = data
    one = _net(0)
    one.cfg = replace(one.cfg, gate_scale=1.5, gate_bias=2.0)
    single = chunked_refine(LipRefiner(one), feats, motion, [T])
    double = chunked_refine(LipRefiner(LipEnsemble.of([one, one], 1.5, 2.0)), feats, motion, [T])
    np.testing.assert_allclose(double, single, atol=1e-6)


def test_step_averages_the_members_heads(ens, data):
    feats, _ = data
    feature, prior = torch.from_numpy(feats[:1]), torch.rand(1, 27)
    styles = [m.label_table()[3:4] for m in ens.members]
    h, c = ens.initial_state(1)
    mouth, h2, c2 = ens.step(feature, torch.cat(styles, dim=1), h, c, prior)
    raws, logits = [], []
    for m, s in zip(ens.members, styles, strict=True):
        raw, logit, _, _ = m.step_raw(feature, s, *m.initial_state(1), prior)
        raws.append(raw)
        logits.append(logit)
    want = closure_gate(torch.stack(raws).mean(0), torch.stack(logits).mean(0), 1.5, 2.0)
    torch.testing.assert_close(mouth, want)
    assert h2.shape == c2.shape == (5, 1, 32)  # 2 + 1 + 2 layers stacked
    assert ens.label_table().shape == (8, 22) and ens.cfg.style_dim == 22


@pytest.mark.parametrize("sizes", [[1] * 20, [7, 3, 11], [33]])
def test_chunking_is_bit_identical_and_onnx_agrees(ens, data, sizes):
    feats, motion = data
    whole = chunked_refine(LipRefiner(ens), feats, motion, [T])
    np.testing.assert_array_equal(chunked_refine(LipRefiner(ens), feats, motion, sizes), whole)
    if sizes == [33]:
        onnx = chunked_refine(LipRefiner(ens, backend="onnx"), feats, motion, sizes)
        assert np.abs(onnx - whole).max() < 1e-4
        keep = np.ones(MOTION_DIM, bool)
        keep[MOUTH_SLICE] = False
        np.testing.assert_array_equal(onnx[:, keep], motion[:, keep])  # only the mouth is refined


def test_reference_clip_style_has_every_members_part(ens, data):
    _, motion = data
    r = LipRefiner(ens, backend="onnx")
    style = r.style_vector(StyleRef(motion[:20]))
    assert style.shape == (22,)
    torch_style = LipRefiner(ens).style_vector(StyleRef(motion[:20]))
    assert np.abs(style - torch_style).max() < 1e-4


def test_members_must_agree():
    with pytest.raises(ConfigError, match="lookahead_frames"):
        LipEnsemble.of([_net(0), _net(1, lookahead=3)])
    with pytest.raises(ConfigError, match="at least 2"):
        LipEnsembleConfig((_net(0).cfg,))


def test_checkpoint_round_trip_half_and_errors(tmp_path, ens, data):
    feats, motion = data
    save_lip_ensemble(ens, tmp_path / "ens", {"note": "t"})
    net, meta = load_lip_net(tmp_path / "ens.json")
    assert isinstance(net, LipEnsemble) and meta == {"note": "t"}
    np.testing.assert_array_equal(
        chunked_refine(LipRefiner(net), feats, motion, [T]),
        chunked_refine(LipRefiner(ens), feats, motion, [T]),
    )
    save_lip_ensemble(ens, tmp_path / "half", half=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (
        tmp_path / "ens.safetensors"
    ).stat().st_size
    half = LipRefiner.load(tmp_path / "half")
    assert (
        np.abs(
            chunked_refine(half, feats, motion, [T]) - chunked_refine(LipRefiner(ens), feats, motion, [T])
        ).max()
        < 0.02
    )
    save_lip_checkpoint(_net(0), tmp_path / "single")
    assert isinstance(load_lip_net(tmp_path / "single")[0], Net)  # the kind decides
    doc = json.loads((tmp_path / "ens.json").read_text())
    doc["config"]["members"] = "two"
    (tmp_path / "ens.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="bad lip ensemble config"):
        load_lip_net(tmp_path / "ens")
    doc["config"] = json.loads((tmp_path / "half.json").read_text())["config"]
    doc["config"]["members"][1]["hidden"] = 16
    (tmp_path / "ens.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError):
        load_lip_net(tmp_path / "ens")


def test_cli_builds_a_calibrated_ensemble(tmp_path, capsys):
    """Two members trained by `train lip` on a tiny corpus, then `train lip-ensemble`; a member
    with another held-out real set is refused with one line and exit code 2."""
    from typer.testing import CliRunner

    from emostream.cli import app, main

    root = tiny_lip_corpus(tmp_path / "corpus")
    runner = CliRunner()
    base = ["train", "lip", "--data", str(root), "--steps", "2", "--batch", "2", "--hidden", "16",
            "--layers", "1", "--augment-copies", "0", "--real-augment-copies", "0", "--no-progress",
            "--ckpt-every", "2"]  # fmt: skip
    for name, extra in (("a", ["--real-val-every", "2"]), ("b", ["--real-val-every", "2", "--lr", "0.01"]),
                        ("c", ["--real-val-every", "3"])):  # fmt: skip
        res = runner.invoke(app, [*base, "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
    args = ["train", "lip-ensemble", "--member", str(tmp_path / "a"), "--member", str(tmp_path / "b"),
            "--data", str(root), "--out", str(tmp_path / "ens"), "--no-progress"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output.strip().splitlines()[-1])
    assert doc["members"] == 2
    net, meta = load_lip_net(tmp_path / "ens")
    chosen = meta["gate_calibration"]["chosen"]
    assert isinstance(net, LipEnsemble) and (net.cfg.gate_scale, net.cfg.gate_bias) == (
        chosen["scale"],
        chosen["bias"],
    )
    assert meta["gate_calibration"]["sets"] == {"val": 1, "val_real": 2}
    assert meta["real_val_utterances"] == ["u4", "u6"] and len(meta["members"]) == 2
    base_mae = meta["gate_calibration"]["base"]["val_real_mouth_mae"]
    assert chosen["val_real_mouth_mae"] <= base_mae * 1.05 + 1e-9
    # The ensemble through `eval lip` (no EmoDiff base: refiner on only), with the VAD diagnostic.
    res = runner.invoke(
        app, ["eval", "lip", "--data", str(root), "--ckpt", str(tmp_path / "ens"), "--motion", "none"]
    )
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)
    assert ev["split"] == "val" and ev["gate"] == {"scale": chosen["scale"], "bias": chosen["bias"]}
    on = ev["refiner_on"]
    assert (
        on["refiner"] is True and on["n_bilabials"] == 1 and 0 <= on["n_quiet_silences"] <= on["n_silences"]
    )
    assert "refiner_off" not in ev
    with pytest.raises(SystemExit) as exc:
        main([*args[:4], "--member", str(tmp_path / "c"), *args[6:]])
    assert exc.value.code == 2 and "holds out other real utterances" in capsys.readouterr().err

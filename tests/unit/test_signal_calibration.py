"""Calibrating the signal critic to human labels that follow another rule than its defaults.

The people here ignore flicker (every flickering clip is "good" on fidelity) and do
not mind a still camera (a static clip is "good" on motion); the default model calls
flicker "bad" and a static clip "bad". Calibration is fitted on one set of clips and
judged on other clips (other flicker strengths, other noise, another still frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.critique import Dimension
from lift.services.critic.backends import create_backend
from lift.services.critic.backends.signal.backend import DEFAULT_MODELS, VERSION
from lift.services.critic.backends.signal.calibration import (
    CalibrationError,
    accuracy,
    calibrate,
    load_calibration,
    measure_evidence,
    read_ratings,
    save_calibration,
)
from lift.services.critic.settings import CriticSettings
from lift.templates import load_templates
from lift.video.encode import encode_video
from lift.video.samples import DEFECT_SPAN, FPS, make_sample

SC, MS, VF = Dimension.SEMANTIC_CONSISTENCY, Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY
CAPTION = "colourful shapes glide across a textured wall"

TRAIN_SAMPLES = (
    "clean",
    "flicker",
    "frozen",
    "judder",
    "blur",
    "noise",
    "cut",
    "blocky",
    "overexposed",
    "static",
)


def _noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = clean.copy()
    for i in range(*DEFECT_SPAN):
        n = rng.normal(0, sigma, f[i].shape)
        f[i] = np.clip(f[i].astype(np.float32) + n, 0, 255).astype(np.uint8)
    return f


def _flicker(clean: np.ndarray, gain: float) -> np.ndarray:
    f = clean.copy()
    for i in range(*DEFECT_SPAN):
        g = 1.0 + gain * (1 if i % 2 else -1)
        f[i] = np.clip(f[i].astype(np.float32) * g, 0, 255).astype(np.uint8)
    return f


def _human(name: str, dim: Dimension) -> str:
    """These people's rule: flicker and a still camera do not bother them."""
    if dim is MS:
        return "Bad" if name.startswith(("frozen", "judder", "cut")) else "Good"
    return "Bad" if name.startswith(("noise", "blur", "blocky", "overexposed")) else "Good"


def _record(name: str, dim: Dimension, label: str) -> dict:
    t = load_templates()
    return {
        "id": f"{name}-{dim.value}",
        "video": f"clips/{name}.mp4",
        "conversations": [
            {"from": "human", "value": "<video>\n" + t.question(dim, CAPTION)},
            {"from": "gpt", "value": f"{label}. Rated by a person."},
        ],
    }


def _write(path: Path, names: list[str], dims: tuple[Dimension, ...] = (MS, VF)) -> Path:
    lines = [json.dumps(_record(n, d, _human(n, d))) for n in names for d in dims]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def rated(tmp_path_factory, mp4s: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("cal")
    clips = root / "clips"
    clips.mkdir()
    for name in TRAIN_SAMPLES:
        (clips / f"{name}.mp4").write_bytes(mp4s[name])
    clean = make_sample("clean").frames
    held = {
        "flicker_weak": _flicker(clean, 0.10),
        "flicker_strong": _flicker(clean, 0.25),
        "noise_weak": _noisy(clean, 10, 1),
        "noise_strong": _noisy(clean, 30, 2),
        "static_late": np.repeat(clean[40:41], len(clean), axis=0),
        "frozen_early": np.concatenate([clean[:5], np.repeat(clean[5:6], 15, axis=0), clean[20:]]),
    }
    for name, frames in held.items():
        (clips / f"{name}.mp4").write_bytes(encode_video(frames, FPS, "mp4"))
    train = _write(root / "train.jsonl", list(TRAIN_SAMPLES))
    # A semantic label the signal critic cannot use: skipped with a note.
    with train.open("a") as f:
        f.write(json.dumps(_record("clean", SC, "Good")) + "\n")
    _write(root / "test.jsonl", list(held))
    return root


def test_calibration_raises_agreement_on_held_out_clips(rated: Path) -> None:
    tpl = load_templates()
    train = measure_evidence(read_ratings(rated / "train.jsonl", tpl), rated / "train.jsonl")
    test = measure_evidence(read_ratings(rated / "test.jsonl", tpl), rated / "test.jsonl")
    assert len(train) == 20 and len(test) == 12  # the semantic label is not usable
    results = {r.dimension: r for r in calibrate(train, test)}
    assert results[SC].model is None and "not assessed" in results[SC].note
    for dim in (MS, VF):
        r = results[dim]
        assert r.model is not None and r.before is not None and r.after is not None
        assert r.after > r.before, (dim, r.before, r.after)
    # The default model disagrees on the held-out flicker (fidelity) and still clip (motion).
    assert results[VF].before == pytest.approx(4 / 6)
    assert results[VF].after == 1.0
    assert results[MS].before == pytest.approx(5 / 6)
    assert results[MS].after == 1.0
    vf = results[VF].model
    assert vf is not None
    assert vf.weights["flicker"] < DEFAULT_MODELS[VF].default_weight
    assert vf.weights["noise"] > 0 and vf.cut_normal < vf.cut_bad
    assert all(w >= 0 for w in vf.weights.values())
    # Deterministic: the same labels give the same model.
    again = {r.dimension: r.model for r in calibrate(train, test)}
    assert again[VF] == vf


def test_the_fitted_file_round_trips(rated: Path, tmp_path: Path) -> None:
    tpl = load_templates()
    train = measure_evidence(read_ratings(rated / "train.jsonl", tpl), rated / "train.jsonl")
    models = {r.dimension: r.model for r in calibrate(train, train) if r.model is not None}
    sha = save_calibration(tmp_path / "cal.json", models, {"records": 20})
    cal = load_calibration(tmp_path / "cal.json")
    assert cal.models == models and cal.sha256 == sha and cal.fitted_on == {"records": 20}
    assert all(
        accuracy(cal.models[d], [r for r in train if r.record.dimension == d]) for d in models
    )


GOOD_MODEL = {
    "weights": {"noise": 2.0},
    "default_weight": 1.0,
    "power": 3.0,
    "cut_normal": 1.0,
    "cut_bad": 2.0,
    "scale": 0.45,
}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "expected a JSON object"),
        ({"version": 2, "dimensions": {}}, "version must be 1"),
        ({"version": 1, "dimensions": {}}, "dimensions must be a non-empty object"),
        (
            {"version": 1, "dimensions": {"semantic_consistency": GOOD_MODEL}},
            "dimensions.semantic_consistency is not a dimension the signal critic assesses",
        ),
        (
            {
                "version": 1,
                "dimensions": {"video_fidelity": {**GOOD_MODEL, "weights": {"noise": -1}}},
            },
            "dimensions.video_fidelity.weights.noise must be >= 0",
        ),
        (
            {"version": 1, "dimensions": {"video_fidelity": {**GOOD_MODEL, "cut_bad": 0.5}}},
            "cut_normal (1.0) must be below cut_bad (0.5)",
        ),
        (
            {"version": 1, "dimensions": {"video_fidelity": {**GOOD_MODEL, "scale": 0}}},
            "dimensions.video_fidelity.scale must be > 0",
        ),
        (
            {"version": 1, "dimensions": {"video_fidelity": {**GOOD_MODEL, "power": "3"}}},
            "dimensions.video_fidelity.power must be a number",
        ),
        (
            {"version": 1, "dimensions": {"motion_smoothness": {"weights": {}}}},
            "dimensions.motion_smoothness: missing cut_bad",
        ),
    ],
)
def test_bad_calibration_files_are_refused(tmp_path: Path, doc: object, message: str) -> None:
    path = tmp_path / "cal.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(CalibrationError) as err:
        load_calibration(path)
    assert message in str(err.value)


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(
        '{"version": 1, "dimensions": {"video_fidelity": {"weights": {"blur": NaN}, '
        '"default_weight": 1, "power": 3, "cut_normal": 1, "cut_bad": 2, "scale": 0.45}}}'
    )
    with pytest.raises(CalibrationError, match=r"weights\.blur must be finite"):
        load_calibration(path)
    with pytest.raises(CalibrationError, match="cannot read calibration file"):
        load_calibration(tmp_path / "missing.json")


def test_the_served_backend_uses_the_calibration(tmp_path: Path) -> None:
    models = {VF: DEFAULT_MODELS[VF].__class__(weights={"flicker": 0.0}, cut_normal=0.8)}
    sha = save_calibration(tmp_path / "cal.json", models, {})
    backend = create_backend(CriticSettings(calibration=tmp_path / "cal.json"))
    assert backend.model.version == f"{VERSION}+cal-{sha[:8]}"
    assert backend.models[VF].weights == {"flicker": 0.0}  # type: ignore[attr-defined]
    assert backend.models[MS] == DEFAULT_MODELS[MS]  # type: ignore[attr-defined]
    assert create_backend(CriticSettings()).model.version == VERSION
    (tmp_path / "bad.json").write_text('{"version": 1, "dimensions": {"blur": {}}}')
    with pytest.raises(ValueError, match=r"calibration: .*dimensions\.blur is not a dimension"):
        CriticSettings(calibration=tmp_path / "bad.json")


def test_cli_fits_reports_and_writes(rated: Path, tmp_path: Path) -> None:
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(
        app,
        [
            "critic",
            "calibrate",
            "--data",
            str(rated / "train.jsonl"),
            "--eval",
            str(rated / "test.jsonl"),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["agreement_on"] == "held_out"
    vf = report["dimensions"]["video_fidelity"]
    assert vf["accuracy_after"] > vf["accuracy_before"]
    sc = report["dimensions"]["semantic_consistency"]
    assert sc["note"] and sc["train_labels"] == 1 and sc["accuracy_after"] is None
    cal = load_calibration(out)
    assert set(cal.models) == {MS, VF}
    assert cal.fitted_on["records"] == 20 and cal.fitted_on["videos"] == 10
    assert report["version_tag"] == cal.tag
    text = CliRunner().invoke(
        app, ["critic", "calibrate", "--data", str(rated / "train.jsonl"), "--out", str(out)]
    )
    assert text.exit_code == 0, text.output
    assert "training (no --eval given)" in text.stdout and "video_fidelity" in text.stdout


def test_cli_errors_say_what_to_fix(rated: Path, tmp_path: Path) -> None:
    def run(data: Path) -> str:
        r = CliRunner().invoke(
            app, ["critic", "calibrate", "--data", str(data), "--out", str(tmp_path / "o.json")]
        )
        assert r.exit_code == 2, r.output
        assert not (tmp_path / "o.json").exists()
        return r.output

    assert "ratings file not found" in run(tmp_path / "nope.jsonl")
    bad = rated / "bad.jsonl"
    bad.write_text(json.dumps(_record("clean", MS, "Good")) + "\n{oops\n")
    assert "line 2" in run(bad)
    missing = rated / "missing.jsonl"
    missing.write_text(json.dumps(_record("ghost", MS, "Good")) + "\n")
    assert "videos missing" in run(missing) and "ghost.mp4" in run(missing)
    sc_only = rated / "sc.jsonl"
    sc_only.write_text(json.dumps(_record("clean", SC, "Good")) + "\n")
    assert "no usable records" in run(sc_only)
    few = _write(rated / "few.jsonl", ["clean", "noise"])
    assert "no dimension has enough labels" in run(few)


def test_predicted_labels_match_the_backend(rated: Path) -> None:
    """Calibration's label for a video is the label the backend gives it."""
    from lift.services.critic.backends.signal import SignalBackend
    from lift.services.critic.backends.signal.calibration import predict
    from lift.video import VideoLimits, decode_video

    data = (rated / "clips" / "flicker_strong.mp4").read_bytes()
    video = decode_video(data, VideoLimits(), max_samples=256, pixel_format="gray")
    judged = SignalBackend().prepare(video, CAPTION, lambda: None)
    ev = measure_evidence(
        read_ratings(rated / "test.jsonl", load_templates()), rated / "test.jsonl"
    )
    for dv in judged.dimensions:
        if dv.name is SC:
            continue
        (r,) = [
            r
            for r in ev
            if r.record.video.endswith("flicker_strong.mp4") and r.record.dimension is dv.name
        ]
        assert dv.probabilities is not None
        assert predict(DEFAULT_MODELS[dv.name], r.evidence) is dv.probabilities.most_likely()

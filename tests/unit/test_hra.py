"""HRA files: validation with line numbers, and agreement numbers we know in advance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.critique import (
    Critique,
    Dimension,
    DimensionVerdict,
    Label,
    LabelProbabilities,
    ModelInfo,
    VideoInfo,
)
from lift.hra.agreement import agreement
from lift.hra.records import read_hra
from lift.templates import load_templates

SC, MS, VF = Dimension.SEMANTIC_CONSISTENCY, Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY
CAPTION = "colourful shapes glide across a textured wall"

# (video, dimension, human label). The signal backend's labels on these samples are
# clean: MS good, VF good; frozen: MS bad, VF good; flicker: MS good, VF bad;
# cut: MS normal, VF good. So against it MS agrees 3/4 (cut: human bad, critic normal)
# and VF 3/4 (flicker: human normal, critic bad); SC is not assessed.
RATINGS = [
    ("clean", SC, "Good"),
    ("clean", MS, "Good"),
    ("clean", VF, "Good"),
    ("frozen", MS, "Bad"),
    ("frozen", VF, "Good"),
    ("flicker", MS, "Good"),
    ("flicker", VF, "Normal"),
    ("cut", MS, "Bad"),
    ("cut", VF, "Good"),
]


def _record(video: str, dim: Dimension, label: str, explicit: bool = False) -> dict:
    t = load_templates()
    rec = {
        "id": f"{video}-{dim.value}",
        "video": f"clips/{video}.mp4",
        "conversations": [
            {"from": "human", "value": "<video>\n" + t.question(dim, CAPTION)},
            {"from": "gpt", "value": f"{label}. Rated by a person."},
        ],
    }
    if explicit:  # LiFT-HRA wording we do not have templates for
        rec["conversations"][0]["value"] = f"<video>\nHow is the {dim.value.split('_')[0]}?"
        rec["dimension"] = dim.value
        rec["prompt"] = CAPTION
    return rec


@pytest.fixture(scope="module")
def hra_dir(tmp_path_factory, mp4s: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("hra")
    (root / "clips").mkdir()
    for name in {v for v, _, _ in RATINGS}:
        (root / "clips" / f"{name}.mp4").write_bytes(mp4s[name])
    lines = [
        json.dumps(_record(v, d, lab, explicit=i % 3 == 0)) for i, (v, d, lab) in enumerate(RATINGS)
    ]
    (root / "hra.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_valid_file_reads_every_record(hra_dir: Path) -> None:
    records, errors = read_hra(hra_dir / "hra.jsonl", load_templates())
    assert errors == []
    assert [(Path(r.video).stem, r.dimension, r.label.value.title()) for r in records] == RATINGS
    assert {r.prompt for r in records} == {CAPTION}
    assert all(r.reason == "Rated by a person." for r in records)


def test_json_array_errors_carry_the_line_of_the_record(hra_dir: Path) -> None:
    good = _record("clean", MS, "Good")
    bad_answer = _record("clean", VF, "Excellent")
    text = "[\n" + json.dumps(good, indent=2) + ",\n" + json.dumps(bad_answer, indent=2) + "\n]\n"
    path = hra_dir / "array.json"
    path.write_text(text)
    records, errors = read_hra(path, load_templates())
    assert len(records) == 1 and len(errors) == 1
    assert errors[0].line == 2 + len(json.dumps(good, indent=2).splitlines())
    assert "does not start with" in errors[0].message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "invalid JSON"),
        ('["a list"]', "must be a JSON object"),
        ('{"conversations": []}', '"video" must be'),
        (
            '{"video": "clips/clean.mp4", "conversations": [{"from": "human", "value": "hi"}]}',
            "human turn and a gpt turn",
        ),
        (
            '{"video": "clips/clean.mp4", "conversations": [{"from": "human", "value": "no marker"}, {"from": "gpt", "value": "Good. x"}]}',
            "no <video> marker",
        ),
        (
            '{"video": "clips/clean.mp4", "conversations": [{"from": "human", "value": "<video>\\nWhat?"}, {"from": "gpt", "value": "Good. x"}]}',
            "which dimension",
        ),
        (
            '{"video": "clips/clean.mp4", "dimension": "colour", "conversations": [{"from": "human", "value": "<video>\\nWhat?"}, {"from": "gpt", "value": "Good. x"}]}',
            '"dimension" must be one of',
        ),
        (
            '{"video": "clips/clean.mp4", "conversations": [{"from": "human", "value": "<video>\\nIs the motion smooth?"}, {"from": "gpt", "value": "Good. x"}]}',
            "cannot find the caption",
        ),
        (
            '{"video": "clips/missing.mp4", "dimension": "video_fidelity", "prompt": "p", "conversations": [{"from": "human", "value": "<video>\\nq"}, {"from": "gpt", "value": "Bad. x"}]}',
            "video file not found",
        ),
    ],
)
def test_each_error_names_its_line_and_what_to_fix(hra_dir: Path, line: str, message: str) -> None:
    ok = json.dumps(_record("clean", MS, "Good"))
    path = hra_dir / "one_bad.jsonl"
    path.write_text(f"{ok}\n\n{line}\n")
    records, errors = read_hra(path, load_templates())
    assert len(records) == 1
    assert [e.line for e in errors] == [3]
    assert message in errors[0].message


def test_duplicate_rating_is_an_error(hra_dir: Path) -> None:
    ok = json.dumps(_record("clean", MS, "Good"))
    path = hra_dir / "dup.jsonl"
    path.write_text(f"{ok}\n{ok}\n")
    _, errors = read_hra(path, load_templates())
    assert len(errors) == 1 and errors[0].line == 2 and "first on line 1" in errors[0].message


def _critique(labels: dict[Dimension, Label]) -> Critique:
    dims = []
    for d in Dimension:
        lab = labels.get(d, Label.UNASSESSED)
        if lab is Label.UNASSESSED:
            dims.append(DimensionVerdict.unassessed(d, "n/a"))
        else:
            probs = {k: 0.0 for k in ("good", "normal", "bad")} | {lab.value: 1.0}
            dims.append(DimensionVerdict(d, lab, None, LabelProbabilities(**probs)))
    return Critique(tuple(dims), None, ModelInfo("fake", "fake", "0"), VideoInfo(1, 1, 1, 1, 1, 1))


def test_agreement_confusion_and_accuracy_with_a_known_critic(hra_dir: Path) -> None:
    records, _ = read_hra(hra_dir / "hra.jsonl", load_templates())
    answers = {  # this critic says "good" on everything it sees except the frozen clip
        "clean": {SC: Label.GOOD, MS: Label.GOOD, VF: Label.GOOD},
        "frozen": {SC: Label.BAD, MS: Label.BAD, VF: Label.BAD},
        "flicker": {SC: Label.GOOD, MS: Label.GOOD, VF: Label.GOOD},
        "cut": {SC: Label.GOOD, MS: Label.GOOD, VF: Label.GOOD},
    }
    calls: list[int] = []

    def judge(pairs):
        calls.append(len(pairs))
        return [_critique(answers[Path(v).stem]) for v, _ in pairs]

    report = agreement("fake", records, judge)
    assert calls == [4]  # one judgement per distinct video, not per record
    assert report.dimensions[SC].accuracy == 1.0
    assert report.dimensions[MS].accuracy == 0.75  # cut: human bad, critic good
    assert report.dimensions[VF].accuracy == 0.5  # frozen: bad vs good; flicker: good vs normal
    assert report.dimensions[MS].confusion[Label.BAD][Label.GOOD] == 1
    assert report.dimensions[VF].confusion[Label.NORMAL][Label.GOOD] == 1
    assert report.average == pytest.approx((1.0 + 0.75 + 0.5) / 3)
    # Eq. 2 on the rated dimensions. Human: clean 0.9, frozen (0.05 + 0.9) / 2,
    # flicker (0.9 + 0.2) / 2, cut (0.05 + 0.9) / 2; critic: 0.9, 0.05, 0.9, 0.9.
    summary = report.reward_summary()
    assert summary["videos"] == 4
    assert summary["human_mean"] == pytest.approx((0.9 + 0.475 + 0.55 + 0.475) / 4)
    assert summary["critic_mean"] == pytest.approx((0.9 + 0.05 + 0.9 + 0.9) / 4)
    assert summary["mean_abs_diff"] == pytest.approx((0 + 0.425 + 0.35 + 0.425) / 4)
    assert report.as_dict()["reward"] == summary


def test_eval_cli_on_the_signal_backend(hra_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["hra", "eval", str(hra_dir / "hra.jsonl"), "--backend", "signal", "--json"]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    dims = report["dimensions"]
    assert dims["semantic_consistency"]["accuracy"] is None
    assert dims["semantic_consistency"]["unassessed"] == 1
    assert dims["motion_smoothness"]["accuracy"] == 0.75
    # The synthetic cut twin splices a second render in: its grain-free, bright
    # pictures read as raised compression and exposure together, "normal" where
    # the person said "good" (the critic judges fidelity absolutely).
    assert dims["video_fidelity"]["accuracy"] == 0.5
    assert dims["video_fidelity"]["confusion"]["good"]["normal"] == 1
    assert dims["motion_smoothness"]["confusion"]["bad"]["normal"] == 1
    assert report["average_accuracy"] == 0.625


def test_validate_cli_exit_codes(hra_dir: Path) -> None:
    ok = CliRunner().invoke(app, ["hra", "validate", str(hra_dir / "hra.jsonl")])
    assert ok.exit_code == 0 and "9 valid records" in ok.stdout
    bad = hra_dir / "bad.jsonl"
    bad.write_text("{}\n")
    result = CliRunner().invoke(app, ["hra", "validate", str(bad)])
    assert result.exit_code == 1
    assert "line 1:" in result.output

"""`lift hra eval` with several critics: one Table-2 row each, JSON reports and a PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.critique import Dimension
from lift.services.critic.backends.signal.backend import OrdinalModel
from lift.services.critic.backends.signal.calibration import save_calibration
from lift.templates import load_templates
from lift.video.samples import write_samples

MS, VF = Dimension.MOTION_SMOOTHNESS, Dimension.VIDEO_FIDELITY
CAPTION = "colourful shapes glide across a textured wall"

# The plain signal critic says MS "normal" on the clip with a cut, where the person said
# "bad"; a calibration that weighs a cut four times as much says "bad" too. So plain
# signal agrees on MS 2/3 and the calibrated one 3/3; VF (cut: "normal", the others
# "good") agrees 3/3 for both, as the calibration leaves VF at its defaults.
RATINGS = [
    ("clean", MS, "Good"),
    ("clean", VF, "Good"),
    ("frozen", MS, "Bad"),
    ("frozen", VF, "Good"),
    ("cut", MS, "Bad"),
    ("cut", VF, "Normal"),
]


def _record(video: str, dim: Dimension, label: str) -> dict:
    return {
        "id": f"{video}-{dim.value}",
        "video": f"clips/{video}.mp4",
        "conversations": [
            {"from": "human", "value": "<video>\n" + load_templates().question(dim, CAPTION)},
            {"from": "gpt", "value": f"{label}. Rated by a person."},
        ],
    }


@pytest.fixture(scope="module")
def hra(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """An HRA file on three sample clips, and a calibration file with its tag."""
    root = tmp_path_factory.mktemp("hra_report")
    write_samples(root / "clips", ("clean", "frozen", "cut"))
    lines = [json.dumps(_record(v, d, lab)) for v, d, lab in RATINGS]
    (root / "hra.jsonl").write_text("\n".join(lines) + "\n")
    cal = root / "cal.json"
    sha = save_calibration(cal, {MS: OrdinalModel(weights={"abrupt_cut": 12.0})}, {"test": 1})
    return root / "hra.jsonl", cal, f"signal+cal-{sha[:8]}"


def _eval(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["hra", "eval", *args], env={"COLUMNS": "200"})


def test_two_critics_one_row_each_in_text_json_and_png(
    hra: tuple[Path, Path, str], tmp_path: Path
) -> None:
    file, cal, cal_name = hra
    critics = ["--critic", "signal", "--critic", f"signal:{cal}"]
    result = _eval(str(file), *critics, "--json")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [r["critic"] for r in reports] == ["signal", cal_name]  # no extra signal row
    plain, calibrated = (r["dimensions"] for r in reports)
    assert plain["motion_smoothness"]["accuracy"] == pytest.approx(2 / 3)
    assert calibrated["motion_smoothness"]["accuracy"] == pytest.approx(1.0)
    assert plain["video_fidelity"]["accuracy"] == calibrated["video_fidelity"]["accuracy"] == 1.0
    assert plain["semantic_consistency"]["accuracy"] is None
    assert reports[0]["average_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert reports[1]["average_accuracy"] == pytest.approx(1.0)
    assert calibrated["motion_smoothness"]["confusion"]["bad"]["bad"] == 2

    png = tmp_path / "agreement.png"
    text = _eval(str(file), *critics, "--png", str(png))
    assert text.exit_code == 0, text.output
    rows = {line.split("│")[1].strip(): line for line in text.stdout.splitlines() if "│" in line}
    assert "signal" in rows and cal_name in rows
    assert "83.3" in rows["signal"] and "100.0" in rows[cal_name]
    assert "—" in rows["signal"]  # semantic consistency: unassessed
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(data) < 2_000_000


def test_calibration_alone_is_compared_with_plain_signal(hra: tuple[Path, Path, str]) -> None:
    file, cal, cal_name = hra
    result = _eval(str(file), "--critic", f"signal:{cal}", "--json")
    assert result.exit_code == 0, result.output
    assert [r["critic"] for r in json.loads(result.stdout)] == [cal_name, "signal"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--critic", "bogus"], "expected signal, signal:CALIBRATION.json or vlm:DIR"),
        (["--critic", "signal:/missing.json"], "cannot read calibration file /missing.json"),
        (["--critic", "vlm:"], "expected signal, signal:CALIBRATION.json or vlm:DIR"),
        (["--critic", "vlm:/no/such/dir"], "invalid critic settings"),
        (["--critic", "signal", "--png", "/no/such/dir/a.png"], "directory /no/such/dir does"),
        ([], "give at least one critic"),
    ],
)
def test_bad_specs_exit_2_with_a_message(
    hra: tuple[Path, Path, str], args: list[str], message: str
) -> None:
    result = _eval(str(hra[0]), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr.replace("\n", " ")


def test_the_table_keeps_every_column_in_80_columns(hra: tuple[Path, Path, str]) -> None:
    """A long critic name folds; Avg and n stay on screen in an 80-column terminal."""
    file, cal, _ = hra
    result = CliRunner().invoke(
        app,
        ["hra", "eval", str(file), "--critic", "signal", "--critic", f"signal:{cal}"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "critic" in line)
    assert "Avg" in lines[header] and lines[header].rstrip().endswith("n ┃")
    row = next(line for line in lines if line.startswith("│ signal "))
    assert row.rstrip().endswith("│ 6 │")  # n: 3 MS + 3 VF ratings, not cut off
    assert all(len(line) <= 80 for line in lines)

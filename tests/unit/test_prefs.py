"""`lift prefs`: VideoAlign's preference CSV, accuracy w/ and w/o ties, the CLI on the signal critic."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.hra.prefs import PrefCounts, read_prefs
from lift.video.samples import write_samples

NAMES = ("clean", "flicker", "frozen", "blur")
PROMPT = "a red ball rolls across green grass"


def _brute_with_ties(pairs: list[tuple[int, float]]) -> float:
    """The definition, directly: best accuracy over ε in 0 and the observed |m| (ties: |m| <= ε)."""
    best = 0.0
    for eps in {0.0} | {abs(m) for _, m in pairs}:
        right = 0
        for h, m in pairs:
            tie = abs(m) <= eps
            right += (h == 0 and tie) or (h != 0 and not tie and h * m > 0)
        best = max(best, right / len(pairs))
    return best


def test_accuracies_by_hand() -> None:
    c = PrefCounts("VQ")
    # A preferred, critic agrees; B preferred, critic disagrees; human tie, critic far apart;
    # human tie, critic nearly tied; A preferred, critic exactly tied.
    c.pairs = [(1, 0.5), (-1, 0.3), (0, 0.9), (0, 0.05), (1, 0.0)]
    # w/o ties: human ties out; C=1, D=1, Tm=1 -> 1/3
    assert c.accuracy_without_ties == pytest.approx(1 / 3)
    # ε=0: the 0.5 pair right -> 1/5; ε=0.05: + the near tie -> 2/5; ε=0.3: the B pair
    # becomes a critic tie -> 2/5; ε=0.5: the 0.5 pair lost -> 1/5; ε=0.9: both human ties -> 2/5
    assert c.accuracy_with_ties == pytest.approx(2 / 5)
    assert c.accuracy_with_ties == pytest.approx(_brute_with_ties(c.pairs))
    s = c.stats(0.0)
    assert s == {"C": 1, "D": 1, "Th": 2, "Tm": 1, "Thm": 0}


def test_with_ties_matches_the_definition_on_random_data() -> None:
    import random

    rng = random.Random(3)
    for _ in range(50):
        pairs = [
            (rng.choice((-1, 0, 1)), round(rng.choice((0.0, rng.uniform(-1, 1))), 1))
            for _ in range(rng.randint(1, 12))
        ]
        c = PrefCounts("MQ")
        c.pairs = pairs
        assert c.accuracy_with_ties == pytest.approx(_brute_with_ties(pairs))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    fields = ["path_A", "path_B", "prompt", "VQ", "MQ", "TA", "fps_A", "num_frames_A"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({"fps_A": "8.0", "num_frames_A": "48", **r})
    return path


def test_read_prefs_refuses_bad_rows_naming_them(tmp_path: Path) -> None:
    write_samples(tmp_path / "videos", ("clean", "blur"))
    f = _write_csv(
        tmp_path / "p.csv",
        [
            {"path_A": "videos/clean.mp4", "path_B": "videos/blur.mp4", "prompt": "x", "VQ": "A"},
            {"path_A": "videos/clean.mp4", "path_B": "videos/none.mp4", "prompt": "x", "VQ": "A"},
            {"path_A": "videos/clean.mp4", "path_B": "videos/blur.mp4", "prompt": "x", "VQ": "C"},
            {"path_A": "videos/clean.mp4", "path_B": "videos/blur.mp4", "prompt": "x"},
        ],
    )
    pairs, errors = read_prefs(f)
    assert len(pairs) == 1 and pairs[0].labels == {"VQ": 1}
    assert errors[0].startswith("line 3:") and "no such file" in errors[0]
    assert errors[1].startswith("line 4:") and "write A, B or same" in errors[1]
    assert errors[2].startswith("line 5:") and "no preference" in errors[2]
    (tmp_path / "h.csv").write_text("a,b\n1,2\n")
    _, errors = read_prefs(tmp_path / "h.csv")
    assert "path_A" in errors[0]


def test_a_row_the_csv_module_cannot_read_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    # A quote left open swallows the rest of the file into one field, past the csv
    # module's field limit: csv.Error escaped read_prefs (a traceback from the CLI).
    rest = "".join(f"v{i}.mp4,w{i}.mp4,a prompt number {i},A\n" for i in range(5000))
    f = tmp_path / "open-quote.csv"
    f.write_text('path_A,path_B,prompt,VQ\na.mp4,b.mp4,"an unclosed prompt,A\n' + rest)
    pairs, errors = read_prefs(f, check_videos=False)
    assert pairs == []
    assert errors[-1].startswith("line 2:") and "unclosed quote" in errors[-1]
    result = CliRunner().invoke(app, ["prefs", "validate", str(f), "--no-check-videos"])
    assert result.exit_code == 1 and "not a readable CSV row" in result.stderr


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    """Sample videos and the signal critic's own scores of them (the engine, not the CLI)."""
    from lift.services.critic.engine import CriticEngine, VideoSource
    from lift.services.critic.settings import CriticSettings
    from lift.serving import Deadline

    d = tmp_path_factory.mktemp("prefs")
    paths = write_samples(d / "videos", NAMES)
    engine = CriticEngine(CriticSettings(backend="signal"))
    engine.load()
    outs = engine.score([(VideoSource.from_arg(str(p)), PROMPT) for p in paths], Deadline())
    engine.close()
    scores = {}
    for name, o in zip(NAMES, outs, strict=True):
        assert o.critique is not None
        scores[name] = {d.name.value: d.score for d in o.critique.dimensions}
    return d, scores


def _label(a: float, b: float, agree: bool) -> str:
    if a == b:
        return "same"
    return ("A" if a > b else "B") if agree else ("B" if a > b else "A")


@pytest.mark.parametrize("agree", [True, False])
def test_eval_cli_on_the_signal_backend(scored, agree: bool) -> None:
    d, scores = scored
    rows = []
    for a, b in [("clean", "flicker"), ("clean", "blur"), ("frozen", "clean"), ("blur", "frozen")]:
        sa, sb = scores[a], scores[b]
        rows.append(
            {
                "path_A": f"videos/{a}.mp4",
                "path_B": f"videos/{b}.mp4",
                "prompt": PROMPT,
                "VQ": _label(sa["video_fidelity"], sb["video_fidelity"], agree),
                "MQ": _label(sa["motion_smoothness"], sb["motion_smoothness"], agree),
                "TA": "A",
            }
        )
    assert any(r["VQ"] != "same" for r in rows) and any(r["MQ"] != "same" for r in rows)
    f = _write_csv(d / f"pairs-{agree}.csv", rows)
    result = CliRunner().invoke(app, ["prefs", "eval", str(f), "--backend", "signal", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    cols = report["columns"]
    for col in ("VQ", "MQ"):
        n_decided = sum(r[col] != "same" for r in rows)
        assert cols[col]["compared"] == 4
        if n_decided:
            assert cols[col]["without_ties"] == (1.0 if agree else 0.0)
    assert cols["TA"]["unassessed"] == 4 and cols["TA"]["without_ties"] is None
    # the table layout renders too
    table = CliRunner().invoke(app, ["prefs", "eval", str(f), "--backend", "signal"])
    assert table.exit_code == 0, table.output
    assert "w/ ties" in table.stdout and "w/o ties" in table.stdout


def test_eval_cli_needs_exactly_one_critic(scored) -> None:
    d, _ = scored
    f = _write_csv(
        d / "one.csv",
        [{"path_A": "videos/clean.mp4", "path_B": "videos/blur.mp4", "prompt": "x", "VQ": "A"}],
    )
    r = CliRunner().invoke(app, ["prefs", "eval", str(f)])
    assert r.exit_code == 2
    ok = CliRunner().invoke(app, ["prefs", "validate", str(f)])
    assert ok.exit_code == 0 and "1 valid pairs" in ok.stdout


def test_eval_cli_against_a_server(scored) -> None:
    from tests.service.conftest import start_critic

    d, scores = scored
    # Motion differs clearly between these two (a freeze): the human label
    # (taken from the engine's scores) cannot hinge on the last digits of a score.
    a, b = scores["clean"], scores["frozen"]
    f = _write_csv(
        d / "server.csv",
        [
            {
                "path_A": "videos/clean.mp4",
                "path_B": "videos/frozen.mp4",
                "prompt": PROMPT,
                "MQ": _label(a["motion_smoothness"], b["motion_smoothness"], True),
            }
        ],
    )
    running, stop = start_critic(video_root=d)
    try:
        for target in (running.grpc_target, running.http_url):
            r = CliRunner().invoke(app, ["prefs", "eval", str(f), "--server", target, "--json"])
            assert r.exit_code == 0, r.output
            mq = json.loads(r.stdout)["columns"]["MQ"]
            assert mq["compared"] == 1 and mq["with_ties"] == 1.0, mq
    finally:
        stop()

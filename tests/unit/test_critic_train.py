"""The rule test: the tiny random critic learns, from ratings, a rule a person sees in the frames.

The rule data (``rule_data.py``): a shape on a panning checkered wall; noise or blur make
fidelity bad, a freeze makes motion bad, a caption naming another colour or shape makes
semantics bad, one reason per case. Before training the critic agrees with the rule about
as often as chance; after a CPU-sized LoRA run it must agree on held-out clips, through
the critic's own serving path with ``--adapter``, and every reason it gives there must be
one it was trained on for that dimension and the label it gave.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lift.hra.records import read_hra, resolve_video
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.settings import CriticSettings
from lift.services.critic.training.rule_data import write_rule_data
from lift.services.critic.training.train import TrainConfig, train
from lift.serving import Deadline
from lift.templates import load_templates

TRAIN_CLIPS, TEST_CLIPS = 480, 48
RUN = {"epochs": 14, "lr": 2e-3, "rank": 8, "alpha": 16, "batch_size": 8, "seed": 0}


@pytest.fixture(scope="module")
def trained(tiny_critic_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("rule-run")
    data, test = write_rule_data(root / "data", TRAIN_CLIPS, TEST_CLIPS, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI budget is one core's worth
    try:
        config = TrainConfig(
            data=data, model=tiny_critic_dir, out=root / "adapter", eval=test, device="cpu", **RUN
        )
        summary = train(config)
    finally:
        torch.set_num_threads(threads)
    return summary, test, root / "adapter"


def test_agreement_goes_from_chance_to_the_rule(trained) -> None:  # type: ignore[no-untyped-def]
    summary, _, _ = trained
    before, after = summary.before, summary.after
    print("before", json.dumps(before), "\nafter", json.dumps(after))
    assert before["errors"] == 0 and after["errors"] == 0
    # three labels, two of them used by the rule: an untrained critic is near or below 1/2
    assert before["average"] <= 0.6
    assert after["average"] >= 0.9, after
    for dim, acc in after["dimensions"].items():
        assert acc >= 0.8, (dim, acc)


def test_train_and_held_out_clips_are_disjoint(trained) -> None:  # type: ignore[no-untyped-def]
    _, test, _ = trained
    train_file = test.with_name("train.jsonl")

    def clips(path: Path) -> tuple[set[str], set[bytes]]:
        names = {
            resolve_video(path, r["video"]) for r in map(json.loads, path.read_text().splitlines())
        }
        return names, {Path(n).read_bytes() for n in names}

    (train_names, train_bytes), (test_names, test_bytes) = clips(train_file), clips(test)
    assert train_names and test_names
    assert not train_names & test_names and not train_bytes & test_bytes


def test_served_adapter_agrees_and_says_reasons_of_its_dimension_and_label(  # type: ignore[no-untyped-def]
    trained, tiny_critic_dir
) -> None:
    _, test, adapter = trained
    templates = load_templates()
    train_records, errors = read_hra(test.with_name("train.jsonl"), templates)
    test_records, test_errors = read_hra(test, templates)
    assert not errors and not test_errors
    # the reasons trained for each (dimension, label): a served reason must be one of them
    known: dict[tuple[str, str], set[str]] = {}
    for r in train_records:
        known.setdefault((r.dimension.value, r.label.value), set()).add(" ".join(r.reason.split()))
    settings = CriticSettings(backend="vlm", model=tiny_critic_dir, adapter=adapter, device="cpu")
    backend = VlmBackend(VlmOptions(model=tiny_critic_dir, adapter=adapter, device="cpu"))
    engine = CriticEngine(settings, backend)
    served = {}
    for video, prompt in sorted({(resolve_video(test, r.video), r.prompt) for r in test_records}):
        data = Path(video).read_bytes()
        served[(video, prompt)] = engine.critique(VideoSource(data=data), prompt, Deadline())
    given, agree = [], 0
    for r in test_records:
        verdict = served[(resolve_video(test, r.video), r.prompt)].dimension(r.dimension)
        agree += verdict.label == r.label
        for reason in verdict.reasons:
            said = " ".join(reason.split())
            given.append(said)
            side = known.get((r.dimension.value, verdict.label.value), set())
            assert said in side, (r.dimension.value, verdict.label.value, said, sorted(side))
    assert len(given) == len(test_records)  # one reason per dimension
    print("reasons given:", {g: given.count(g) for g in sorted(set(given))})
    # agreement of the critic as served with --adapter (labels as it answers them)
    served_agreement = agree / len(test_records)
    print(f"served agreement {served_agreement:.3f}")
    assert served_agreement >= 0.9

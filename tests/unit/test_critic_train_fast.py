"""`lift critic train`, the quick properties: load-back, VILA, resume, determinism, bad input.

The rule test (the tiny critic learning a visible rule) is test_critic_train.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lift.cli.main import app
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.training.data import end_token
from lift.services.critic.training.rule_data import write_rule_data
from lift.services.critic.training.train import CriticTrainer, TrainConfig, TrainError, train


@pytest.fixture(scope="module")
def rule_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_rule_data(tmp_path_factory.mktemp("rule"), train=6, test=3, seed=5)


def _config(data: tuple[Path, Path], model: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {"epochs": 2, "lr": 3e-3, "rank": 4, "alpha": 8}
    base |= {"batch_size": 6, "device": "cpu", "eval": data[1]}
    return TrainConfig(data=data[0], model=model, out=out, **(base | kw))  # type: ignore[arg-type]


def _probabilities(scorer, items) -> np.ndarray:  # type: ignore[no-untyped-def]
    answers = scorer.run(items, False, lambda: None)
    return np.array(
        [
            [a.probabilities.good, a.probabilities.normal, a.probabilities.bad]
            for per in answers
            for a in per
        ]
    )


def _served(model: Path, adapter: Path | None, templates: str | None = None) -> VlmBackend:
    return VlmBackend(VlmOptions(model=model, adapter=adapter, templates=templates, device="cpu"))


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(directory.glob("*.safetensors")):
        out |= {f"{f.name}:{k}": v for k, v in load_file(str(f)).items()}
    return out


def test_qwen_adapter_loads_back_as_trained(rule_data, tiny_critic_dir, tmp_path) -> None:
    trainer = CriticTrainer(_config(rule_data, tiny_critic_dir, tmp_path / "a"))
    summary = trainer.run()
    assert summary.family == "qwen2_vl" and summary.steps == 6
    assert summary.losses[-1] < summary.losses[0]
    items = [p.item for p in trainer.videos.items.values()]
    trained = _probabilities(trainer.scorer, items)
    # the critic as served with --adapter (merged through PeftModel.from_pretrained)
    loaded = _probabilities(_served(tiny_critic_dir, tmp_path / "a").scorer, items)
    np.testing.assert_allclose(loaded, trained, atol=2e-5)
    base = _probabilities(_served(tiny_critic_dir, None).scorer, items)
    assert np.abs(base - loaded).max() > 1e-3  # the adapter changed what the critic says
    log = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [0, 1, 2]
    assert set(log[0]["eval"]["dimensions"]) == {
        "semantic_consistency",
        "motion_smoothness",
        "video_fidelity",
    }
    assert (tmp_path / "a" / "checkpoints" / "epoch-2" / "adapter_config.json").is_file()
    written = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert written["family"] == "qwen2_vl" and written["num_frames"] == 8
    assert written["model"] == str(tiny_critic_dir) and written["lr"] == 3e-3
    assert any("merger" in n for n in written["trainable"])


@pytest.mark.parametrize("projector", [None, True])
def test_vila_trains_and_its_lift_style_adapter_loads(
    projector, rule_data, tiny_vila_dir, tmp_path
) -> None:
    out = tmp_path / "vila"
    trainer = CriticTrainer(
        _config(rule_data, tiny_vila_dir, out, templates="lift-13b", train_projector=projector)
    )
    summary = trainer.run()
    assert summary.family == "vila"
    assert summary.losses[-1] < summary.losses[0]
    # LiFT's layout: LoRA by full module path
    config = json.loads((out / "adapter_config.json").read_text())
    assert all(t.startswith("llm.model.layers.") for t in config["target_modules"])
    assert trainer.handle.peft_config["default"].inference_mode is False  # the live one
    if projector is None:  # LiFT's recipe: LoRA only, no projector, no non-LoRA file
        assert all(".lora_" in n for n in trainer.params)
        assert not list(out.glob("non_lora_trainables.*"))
    else:  # the projector as non-LoRA trainables, also as the .bin LiFT's own loader reads
        rest = load_file(str(out / "non_lora_trainables.safetensors"))
        assert rest and all(k.startswith("base_model.model.mm_projector.") for k in rest)
        pickled = torch.load(out / "non_lora_trainables.bin", weights_only=True)
        assert pickled.keys() == rest.keys()
        assert all(torch.equal(pickled[k], rest[k]) for k in rest)
    items = [p.item for p in trainer.videos.items.values()]
    trained = _probabilities(trainer.scorer, items)
    loaded = _probabilities(_served(tiny_vila_dir, out, "lift-13b").scorer, items)
    np.testing.assert_allclose(loaded, trained, atol=2e-5)
    if projector:  # the .bin alone loads the same
        (out / "non_lora_trainables.safetensors").unlink()
        alone = _probabilities(_served(tiny_vila_dir, out, "lift-13b").scorer, items)
        np.testing.assert_allclose(alone, trained, atol=2e-5)
    base = _probabilities(_served(tiny_vila_dir, None, "lift-13b").scorer, items)
    assert np.abs(base - loaded).max() > 1e-3


def test_same_seed_same_adapter_other_seed_another(rule_data, tiny_critic_dir, tmp_path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(_config(rule_data, tiny_critic_dir, tmp_path / name, epochs=1, seed=seed))
    a, b, c = (_tensors(tmp_path / n) for n in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_equals_an_uninterrupted_run(rule_data, tiny_critic_dir, tmp_path) -> None:
    whole = tmp_path / "whole"
    train(_config(rule_data, tiny_critic_dir, whole, epochs=3, batch_size=4))
    # interrupted while writing epoch 2's checkpoint (its state cut short), and a half-written
    # epoch-3.tmp: resume falls back to epoch 1, the newest readable one
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    for n in (1, 2):
        shutil.copytree(whole / "checkpoints" / f"epoch-{n}", cut / "checkpoints" / f"epoch-{n}")
    state = cut / "checkpoints" / "epoch-2" / "state.json"
    state.write_text(state.read_text()[:100])
    shutil.copytree(whole / "checkpoints" / "epoch-3", cut / "checkpoints" / "epoch-3.tmp")
    said: list[str] = []
    summary = train(
        _config(rule_data, tiny_critic_dir, cut, epochs=3, batch_size=4, resume=True), said.append
    )
    assert summary.resumed_from == 1
    assert any("epoch-2 is not a readable checkpoint" in s for s in said), said
    assert sorted(p.name for p in (cut / "checkpoints").iterdir() if ".tmp" not in p.name) == [
        "epoch-1",
        "epoch-2",
        "epoch-3",
    ]
    a, b = _tensors(whole), _tensors(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    log = (cut / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in log] == [0, 1, 2, 3]  # the log came with it


def test_resume_with_other_options_is_refused(rule_data, tiny_critic_dir, tmp_path) -> None:
    out = tmp_path / "r"
    train(_config(rule_data, tiny_critic_dir, out, epochs=1))
    assert not list((out / "checkpoints").glob("*.tmp"))  # written, then renamed
    # a fresh run into an OUT holding checkpoints would mix with them (a later --resume
    # could pick a stale epoch): refused
    with pytest.raises(TrainError, match="use --resume to continue it or a new --out"):
        train(_config(rule_data, tiny_critic_dir, out, epochs=1))
    with pytest.raises(TrainError, match="inside --model"):
        train(_config(rule_data, tiny_critic_dir, tiny_critic_dir / "adapter", epochs=1))
    with pytest.raises(TrainError, match="inside --model"):
        train(_config(rule_data, tiny_critic_dir, tiny_critic_dir, epochs=1))
    with pytest.raises(TrainError, match=r"--lr"):
        train(_config(rule_data, tiny_critic_dir, out, epochs=1, lr=1e-3, resume=True))


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["critic", "train", *args])
    return r.exit_code, r.output


def test_bad_inputs_exit_2_with_a_message(rule_data, tiny_critic_dir, tmp_path) -> None:
    train_file = str(rule_data[0])
    model = str(tiny_critic_dir)
    out = str(tmp_path / "out")
    code, text = _cli("--data", str(tmp_path / "nope.jsonl"), "--model", model, "--out", out)
    assert code == 2 and "no such file" in text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"video": "x.mp4"}\n{oops\n')
    code, text = _cli("--data", str(bad), "--model", model, "--out", out, "--device", "cpu")
    assert code == 2 and "line 1" in text and "line 2" in text
    missing = tmp_path / "missing.jsonl"
    missing.write_text(rule_data[0].read_text().splitlines()[0] + "\n")
    code, text = _cli("--data", str(missing), "--model", model, "--out", out, "--device", "cpu")
    assert code == 2 and "video file not found" in text
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, text = _cli("--data", train_file, "--model", model, "--out", str(afile))
    assert code == 2 and "is a file" in text
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    code, text = _cli("--data", train_file, "--model", str(other), "--out", out, "--device", "cpu")
    assert code == 2 and "not supported" in text
    code, text = _cli("--data", train_file, "--model", str(tmp_path), "--out", out)
    assert code == 2 and "config.json" in text
    code, text = _cli("--data", train_file, "--model", model, "--out", out, "--epochs", "0")
    assert code == 2 and "--epochs" in text
    # --demo runs its own data and options: others given with it are refused, not ignored
    code, text = _cli("--demo", str(tmp_path / "demo"), "--epochs", "2", "--lr", "0.1")
    assert code == 2 and "drop --epochs, --lr" in text
    assert not (tmp_path / "demo").exists()


def test_a_reward_head_checkpoint_is_refused(rule_data, tmp_path) -> None:
    from lift.services.critic.backends.vlm.tiny_videoalign import write_tiny_videoalign

    head = write_tiny_videoalign(tmp_path / "videoalign")
    code, text = _cli(
        "--data", str(rule_data[0]), "--model", str(head), "--out", str(tmp_path / "o")
    )
    assert code == 2 and "reward_head" in text


def test_rule_data_is_seeded_valid_hra_with_one_reason_per_case(tmp_path) -> None:
    from lift.hra.records import read_hra
    from lift.services.critic.training.rule_data import training_reasons
    from lift.templates import load_templates

    a = write_rule_data(tmp_path / "a", train=4, test=2, seed=3)
    b = write_rule_data(tmp_path / "b", train=4, test=2, seed=3)
    for x, y in zip(a, b, strict=True):
        assert x.read_text() == y.read_text()
    videos = sorted((tmp_path / "a" / "videos").glob("*.mp4"))
    assert len(videos) == 6
    assert all(v.read_bytes() == (tmp_path / "b" / "videos" / v.name).read_bytes() for v in videos)
    records, errors = read_hra(a[0], load_templates())
    assert not errors and len(records) == 12
    assert {r.reason for r in records} <= training_reasons()


def test_reasons_the_critic_cannot_start_are_warned_about(tiny_critic_dir, tmp_path) -> None:
    train_file, _ = write_rule_data(tmp_path / "d", train=2, test=1, seed=0)
    lines = train_file.read_text().splitlines()
    first = json.loads(lines[0])
    label = first["conversations"][1]["value"].split(".")[0]
    # the tiny tokenizer splits " Heavy" into a lone space and "H": never a reason's start
    first["conversations"][1]["value"] = f"{label}. Heavy noise covers the frames."
    train_file.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    said: list[str] = []
    CriticTrainer(
        TrainConfig(data=train_file, model=tiny_critic_dir, out=tmp_path / "o", device="cpu"),
        echo=said.append,
    )
    assert any("warning: 1 reasons" in s and "line 1" in s for s in said), said


@pytest.mark.parametrize("family", ["qwen", "vila"])
def test_bf16_model_trains_float32_tensors_that_all_move(
    family, rule_data, tiny_critic_dir, tiny_vila_dir, tmp_path
) -> None:
    model, templates = (tiny_critic_dir, None) if family == "qwen" else (tiny_vila_dir, "lift-13b")
    config = _config(
        rule_data, model, tmp_path / "a", epochs=1, batch_size=9, dtype="bfloat16",
        templates=templates, eval=None, lr=1e-3, train_projector=True,
    )  # fmt: skip
    trainer = CriticTrainer(config)
    assert trainer.model_dtype == torch.bfloat16
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    assert before and all(p.dtype == torch.float32 for p in trainer.params.values())
    summary = trainer.run()
    assert summary.steps == 2
    for n, p in trainer.params.items():
        assert p.dtype == torch.float32, n
        moved = (p.detach() != before[n]).float().mean().item()
        assert moved > 0.9, (n, moved)  # in bf16 most elements would not move at this lr
    items = [p.item for p in trainer.videos.items.values()]
    with trainer.autocast():
        trained = _probabilities(trainer.scorer, items)
    served = VlmBackend(
        VlmOptions(
            model=model, adapter=tmp_path / "a", templates=templates, device="cpu", dtype="bfloat16"
        )
    )
    loaded = _probabilities(served.scorer, items)
    np.testing.assert_allclose(loaded, trained, atol=0.05)


def test_prepared_pixels_are_held_on_disk_not_in_memory(
    rule_data, tiny_critic_dir, tmp_path
) -> None:
    from lift.services.critic.training.data import PreparedVideos, read_records

    trainer = CriticTrainer(_config(rule_data, tiny_critic_dir, tmp_path / "a", epochs=1))
    videos = trainer.videos
    assert len(videos.items) == 9  # 6 training + 3 held-out clips
    assert videos.held_bytes() == 0
    assert all(isinstance(p.item.vision.pixels, np.memmap) for p in videos.items.values())
    assert len(list(trainer.cache.glob("*.npy"))) == 9
    # the same pixels as preparing them in memory
    plain = PreparedVideos(trainer.engine)
    keys = plain.add(rule_data[0], read_records(rule_data[0], trainer.templates))
    assert plain.held_bytes() > 0
    for k in set(keys):
        np.testing.assert_array_equal(
            np.asarray(videos.items[k].item.vision.pixels), plain.items[k].item.vision.pixels
        )
        assert videos.items[k].item.rows == plain.items[k].item.rows
    trainer.run()
    assert not trainer.cache.parent.exists()  # removed at the end of the run


def test_several_processes_each_get_batches_and_their_own_device() -> None:
    from lift.services.critic.training.train import batches_per_process, process_device

    assert batches_per_process(18, 6, 1) == 3
    assert batches_per_process(18, 4, 2) == 2  # 5 batches: the last one dropped
    assert batches_per_process(18, 6, 3) == 1
    with pytest.raises(TrainError, match="fewer than the 4 processes"):
        batches_per_process(18, 6, 4)  # 3 batches: one process would wait forever
    assert process_device("cuda", "cuda:0", 1) == "cuda"
    assert process_device("cuda", "cuda:1", 2) == "cuda:1"
    assert process_device("cuda:0", "cuda:3", 4) == "cuda:3"
    assert process_device("auto", "cuda:2", 4) == "cuda:2"
    assert process_device("cpu", "cpu", 2) == "cpu"


def _one_record_file(rule_data: tuple[Path, Path], folder: Path, video: str) -> Path:
    """A data file in ``folder`` with the first training record, its video renamed."""
    record = json.loads(rule_data[0].read_text().splitlines()[0])
    record["video"] = video
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_videos_outside_the_data_folder_or_not_plain_files_are_refused(
    rule_data, tiny_critic_dir, tmp_path
) -> None:
    clip = sorted((rule_data[0].parent / "videos").glob("*.mp4"))[0]
    outside = tmp_path / "elsewhere" / "clip.mp4"
    outside.parent.mkdir()
    shutil.copy(clip, outside)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "link.mp4").symlink_to(outside)
    model, out = str(tiny_critic_dir), str(tmp_path / "out")
    for video in (str(outside), "../elsewhere/clip.mp4", "sub/link.mp4"):
        data = _one_record_file(rule_data, tmp_path / "d", video)
        code, text = _cli("--data", str(data), "--model", model, "--out", out, "--device", "cpu")
        assert code == 2 and "outside" in text and "--allow-outside-data" in text, (video, text)
        assert "line 1" in text
    # allowed when asked for
    code, text = _cli(
        "--data", str(data), "--model", model, "--out", out, "--device", "cpu", "--epochs", "1",
        "--allow-outside-data",
    )  # fmt: skip
    assert code == 0, text
    # not a video
    (tmp_path / "d" / "junk.mp4").write_bytes(b"not a video at all" * 100)
    data = _one_record_file(rule_data, tmp_path / "d", "junk.mp4")
    out = str(tmp_path / "out2")
    code, text = _cli("--data", str(data), "--model", model, "--out", out, "--device", "cpu")
    assert code == 2 and "junk.mp4" in text and "line 1" in text, text


def test_a_video_over_the_size_limit_or_a_fifo_is_refused_before_reading(tmp_path) -> None:
    import os

    from lift.services.critic.training.data import TrainDataError, read_video

    data = tmp_path / "train.jsonl"
    data.write_text("")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(TrainDataError, match="5000 bytes, over the critic's max_video_bytes"):
        read_video("here", data, str(big), 4096, False)
    assert read_video("here", data, str(big), 5000, False) == b"x" * 5000
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    with pytest.raises(TrainDataError, match="not a regular file"):
        read_video("here", data, str(fifo), 4096, False)  # opened without blocking
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(TrainDataError, match=r"dir\.mp4"):
        read_video("here", data, str(tmp_path / "dir.mp4"), 4096, False)


def test_accumulated_small_batches_train_as_one_big_batch(
    rule_data, tiny_critic_dir, tmp_path
) -> None:
    # 18 ratings: 3 steps either way, over the same seeded order of ratings
    train(_config(rule_data, tiny_critic_dir, tmp_path / "big", epochs=1, batch_size=6, eval=None))
    train(
        _config(
            rule_data, tiny_critic_dir, tmp_path / "acc", epochs=1, batch_size=2, grad_accum=3,
            eval=None,
        )
    )  # fmt: skip
    big, acc = _tensors(tmp_path / "big"), _tensors(tmp_path / "acc")
    assert big.keys() == acc.keys()
    for k in big:
        torch.testing.assert_close(acc[k], big[k], rtol=0, atol=2e-5)


def test_answers_the_critic_cannot_say_are_warned_about_with_file_and_line(
    tiny_critic_dir, tmp_path
) -> None:
    train_file, _ = write_rule_data(tmp_path / "d", train=2, test=1, seed=0)
    lines = [json.loads(x) for x in train_file.read_text().splitlines()]
    for n, reason in ((1, ""), (3, " ".join(["The video is blurry."] * 20))):
        label = lines[n]["conversations"][1]["value"].split(".")[0]
        lines[n]["conversations"][1]["value"] = f"{label}. {reason}".strip()
    train_file.write_text("".join(json.dumps(x) + "\n" for x in lines))
    said: list[str] = []
    CriticTrainer(
        TrainConfig(data=train_file, model=tiny_critic_dir, out=tmp_path / "o", device="cpu"),
        echo=said.append,
    )
    assert any(f"{train_file}:line 2" in s and "empty reason" in s for s in said), said
    assert any(f"{train_file}:line 4" in s and "max_reason_tokens (48" in s for s in said), said


def test_a_rating_without_a_reason_trains_its_label_only(tiny_critic_dir, tmp_path) -> None:
    """ "Good." with no reason (the feedback page allows it) trains the label tokens and no end
    token: the served critic always says a reason, so it must not learn to stop after one."""
    train_file, _ = write_rule_data(tmp_path / "d", train=2, test=1, seed=0)
    lines = [json.loads(x) for x in train_file.read_text().splitlines()]
    label = lines[0]["conversations"][1]["value"].split(".")[0]
    lines[0]["conversations"][1]["value"] = f"{label}."
    train_file.write_text("".join(json.dumps(x) + "\n" for x in lines))
    trainer = CriticTrainer(
        TrainConfig(data=train_file, model=tiny_critic_dir, out=tmp_path / "o", device="cpu"),
        echo=lambda _: None,
    )
    bare, full = trainer.examples[0], trainer.examples[1]
    scorer = trainer.scorer
    end = end_token(scorer)
    assert full.answer[-1] == end
    forced = list(scorer.forced[next(lab for lab in scorer.forced if lab.value == label.lower())])
    assert list(bare.answer) == forced and end not in bare.answer


def test_chatml_answers_end_on_im_end_not_a_base_tokenizers_eos() -> None:
    from types import SimpleNamespace

    ids = {"<|im_end|>": 7, "<|endoftext|>": 3}
    tok = SimpleNamespace(
        chat_template="{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}",
        eos_token_id=3,
        unk_token_id=None,
        convert_tokens_to_ids=lambda t: ids.get(t),
    )
    family = SimpleNamespace(stop_texts=lambda t: [])
    assert end_token(SimpleNamespace(tokenizer=tok, family=family, templates=None)) == 7
    tok.chat_template = "{{ messages }}"
    assert end_token(SimpleNamespace(tokenizer=tok, family=family, templates=None)) == 3


@pytest.fixture(scope="module")
def tiny_qwen25_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic

    return write_tiny_critic(tmp_path_factory.mktemp("tiny-qwen25"), family="qwen2_5_vl")


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_the_loss_is_the_models_own_cross_entropy_on_answer_tokens_only(
    family, rule_data, tiny_critic_dir, tiny_qwen25_dir, tmp_path
) -> None:
    model_dir = tiny_critic_dir if family == "qwen2_vl" else tiny_qwen25_dir
    trainer = CriticTrainer(_config(rule_data, model_dir, tmp_path / "a", eval=None))
    assert trainer.family.name == family
    with torch.no_grad():  # a trained-looking LoRA (B is zero at the start)
        for n, p in trainer.params.items():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    batch = trainer.examples[:3]  # answers of different lengths: padding in play
    ours = trainer.loss(batch)
    # independently: the HF model's forward on each unpadded row, labels -100 on the question
    total, tokens = 0.0, 0
    for e in batch:
        ids = torch.tensor([list(e.question) + list(e.answer)])
        labels = ids.clone()
        labels[0, : len(e.question)] = -100
        vision = trainer.videos.items[e.key].item.vision
        extra = {"second_per_grid_ts": torch.tensor([vision.seconds_per_grid_t])}
        with torch.no_grad():
            out = trainer.model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pixel_values_videos=torch.from_numpy(np.array(vision.pixels)),
                video_grid_thw=torch.tensor([vision.grid]),
                labels=labels,
                mm_token_type_ids=(ids == trainer.scorer.video_token_id).int() * 2,  # video
                **(extra if family == "qwen2_5_vl" else {}),
            )
        total += float(out.loss) * len(e.answer)
        tokens += len(e.answer)
    torch.testing.assert_close(float(ours), total / tokens, rtol=1e-4, atol=1e-5)
    # and the run trains Qwen2.5-VL end to end: loss falls, the adapter loads back
    summary = trainer.run()
    assert summary.losses[-1] < summary.losses[0]
    items = [p.item for p in trainer.videos.items.values()]
    trained = _probabilities(trainer.scorer, items)
    loaded = _probabilities(_served(model_dir, tmp_path / "a").scorer, items)
    np.testing.assert_allclose(loaded, trained, atol=2e-5)


def test_eval_sharing_videos_with_the_training_data_is_warned_about(
    rule_data, tiny_critic_dir, tmp_path
) -> None:
    said: list[str] = []
    config = _config((rule_data[0], rule_data[0]), tiny_critic_dir, tmp_path / "o")
    CriticTrainer(config, echo=said.append)
    assert any("6 videos of --eval" in s and "not on held-out videos" in s for s in said), said
    said.clear()
    CriticTrainer(_config(rule_data, tiny_critic_dir, tmp_path / "p"), echo=said.append)
    assert not any("--eval" in s for s in said), said

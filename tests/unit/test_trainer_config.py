"""Run configs: YAML and JSON, defaults, and errors that name the field."""

from __future__ import annotations

import json

import pytest

from lift.errors import InvalidInput
from lift.services.trainer.config import parse_run_config

GOOD = {"prompts": ["a dog runs"], "steps": 3}


def test_yaml_and_json_give_the_same_config() -> None:
    a = parse_run_config(json.dumps(GOOD))
    b = parse_run_config("prompts:\n  - a dog runs\nsteps: 3\n")
    assert a == b
    assert a.reward_map.good == 0.9 and a.reward_map.normal == 0.2 and a.reward_map.bad == 0.05
    assert a.optimizer.betas == (0.9, 0.95) and a.optimizer.grad_clip == 1.0
    assert a.strategy == "reward_weighted"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"optimizer": {"lr": -1}}, "optimizer.lr"),
        ({"optimizer": {"betas": [0.9, 1.5]}}, "optimizer.betas"),
        ({"strategy": "ppo"}, "strategy"),
        ({"steps": 0}, "steps"),
        ({"batch_size": "many"}, "batch_size"),
        ({"lora": {"rank": 0}}, "lora.rank"),
        ({"reward_map": {"good": 0.1, "normal": 0.5}}, "reward_map"),
        ({"prompts": [""]}, "prompts"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"generator": {"address": ""}}, "generator.address"),
        ({"eval": {"seeds": [-1]}}, "eval.seeds"),
        ({"guards": {"max_drop": 0}}, "guards.max_drop"),
        ({"real_data": {"weight": 1}}, "real_data.path"),
    ],
)
def test_bad_fields_are_named(patch: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_run_config({**GOOD, **patch})
    assert field in err.value.message


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("", "empty"),
        ("[1, 2]", "mapping"),
        ("prompts: [unclosed", "YAML"),
        ({"steps": 3}, "prompts"),
        ({"mode": "offline", "steps": 2}, "offline_data"),
        ({**GOOD, "lora": {"full_finetune": True}}, "publish_every"),
    ],
)
def test_bad_documents_say_what_to_fix(source: object, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_run_config(source)  # type: ignore[arg-type]
    assert words in err.value.message

"""lift.t2v: the model families the generator and the trainer share."""

from __future__ import annotations

import subprocess
import sys

from lift.t2v import GenericFamily, family_for, trainable_family_for, trainable_pipelines
from lift.t2v.cogvideox import CogVideoXFamily


class CogVideoXPipeline:  # named like diffusers' class: the registry goes by class name
    pass


class WanPipeline:
    pass


def test_the_registry_resolves_by_pipeline_class() -> None:
    assert isinstance(family_for(CogVideoXPipeline()), CogVideoXFamily)
    assert isinstance(family_for(WanPipeline()), GenericFamily)


def test_only_trainable_families_reach_the_trainer() -> None:
    assert isinstance(trainable_family_for(CogVideoXPipeline()), CogVideoXFamily)
    assert trainable_family_for(WanPipeline()) is None
    assert trainable_pipelines() == ["CogVideoXPipeline"]


def test_importing_the_families_loads_no_torch() -> None:
    code = (
        "import sys, lift.t2v, lift.t2v.tiny; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

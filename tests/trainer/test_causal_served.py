"""The generative model as served: the evaluation's greedy answers, INT8 on all but the MLP's output projection,
seeded sampling, answers forced to a length, and its cost measured in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.causal_helpers import tiny_causal_lm
from trainer.causal_eval import generate
from trainer.causal_served import load_generator
from trainer.errors import TrainerError
from trainer.generation_cost import measure_generation_cost

PROMPTS = ["Define the noun: kettle", "Define the verb: run quickly over the hills", "hi"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("served-lm"), [*PROMPTS, "a metal pot for boiling water"])


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, trainer.causal_served; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_greedy_answers_are_the_evaluations(tiny_lm: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    evaluated = generate(model, AutoTokenizer.from_pretrained(tiny_lm), PROMPTS, max_new_tokens=6)
    assert load_generator(tiny_lm, int8=False, threads=1).generate(PROMPTS, 6) == evaluated


def test_int8_quantizes_every_linear_but_the_mlp_output_and_answers(tiny_lm: Path) -> None:
    generator = load_generator(tiny_lm, int8=True, threads=1)
    linears = {name: type(module) for name, module in generator.model.named_modules()
               if name.endswith(("_proj", "lm_head"))}  # fmt: skip
    assert {kind for name, kind in linears.items() if name.endswith("down_proj")} == {torch.nn.Linear}
    assert {kind for name, kind in linears.items() if not name.endswith("down_proj")} == {
        torch.ao.nn.quantized.dynamic.Linear
    }
    assert "lm_head" in linears
    assert [type(answer) for answer in generator.generate(PROMPTS, 6)] == [str] * len(PROMPTS)


def test_sampling_repeats_under_a_seed_and_leaves_greedy(tiny_lm: Path) -> None:
    generator = load_generator(tiny_lm, int8=False, threads=1)
    sampled = []
    for _ in range(2):
        torch.manual_seed(3)
        sampled.append(generator.generate(PROMPTS, 8, temperature=1.0, repetition_penalty=1.0))
    assert sampled[0] == sampled[1]
    assert sampled[0] != generator.generate(PROMPTS, 8, repetition_penalty=1.0)


def test_a_forced_answer_has_exactly_the_tokens_asked(tiny_lm: Path) -> None:
    generator = load_generator(tiny_lm, int8=False, threads=1)
    steps = []  # one forward pass per new token: the prompt's yields the first
    hook = generator.model.register_forward_hook(lambda module, args, output: steps.append(1))
    try:
        generator.generate(PROMPTS[:1], 7, min_new_tokens=7)
    finally:
        hook.remove()
    assert len(steps) == 7


def test_the_cost_is_measured_in_a_process_of_its_own(tiny_lm: Path) -> None:
    cost = measure_generation_cost(tiny_lm, int8=True, threads=1, prompts=PROMPTS, new_tokens=4, samples=3)
    assert cost.texts == 3
    assert 0 < cost.latency_ms_p50 <= cost.latency_ms_p99
    assert 50 < cost.peak_memory_mb < 2000


def test_a_cost_that_cannot_be_measured_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="measuring .* as served failed"):
        measure_generation_cost(tmp_path, int8=False, threads=1, prompts=PROMPTS, samples=1)
    with pytest.raises(TrainerError, match="no prompts to time"):
        measure_generation_cost(tmp_path, int8=False, threads=1, prompts=[])

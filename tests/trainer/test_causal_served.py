"""The generative model as served: the evaluation's greedy answers, from transformers in fp32 and from the ONNX
export (word for word unquantized; 8-bit weights quantized; Llama-shaped decoders only), seeded sampling, answers
forced to a length, and its cost measured in a process of its own."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from tests.trainer.causal_helpers import tiny_causal_lm
from trainer.causal_eval import generate
from trainer.causal_export import UnsupportedDecoder, export_decoder
from trainer.causal_onnx import OnnxGenerator, load_onnx_generator
from trainer.causal_served import TorchGenerator, load_generator
from trainer.decoding import chat_prompt
from trainer.errors import TrainerError
from trainer.generation_cost import measure_generation_cost
from trainer.model_info import DECODER_ONNX

PROMPTS = ["Define the noun: kettle", "Define the verb: run quickly over the hills", "hi"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("served-lm"), [*PROMPTS, "a metal pot for boiling water"])


@pytest.fixture(scope="module")
def exported(tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_decoder(tiny_lm, tmp_path_factory.mktemp("export") / "int8")


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, trainer.causal_served; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_greedy_answers_are_the_evaluations(tiny_lm: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    evaluated = generate(model, AutoTokenizer.from_pretrained(tiny_lm), PROMPTS, max_new_tokens=6)
    assert load_generator(tiny_lm, None, int8=False, threads=1).generate(PROMPTS, 6) == evaluated


def test_the_unquantized_export_answers_and_scores_as_transformers_does(tiny_lm: Path, tmp_path: Path) -> None:
    onnx_generator = load_onnx_generator(export_decoder(tiny_lm, tmp_path / "fp32", quantize=False), threads=1)
    torch_generator = load_generator(tiny_lm, None, int8=False, threads=1)
    assert isinstance(torch_generator, TorchGenerator)
    for penalty in (1.0, 1.2):  # padded batches, the cache and the penalty over prompt and answer alike
        expected = torch_generator.generate(PROMPTS, 10, repetition_penalty=penalty, min_new_tokens=10)
        assert onnx_generator.generate(PROMPTS, 10, repetition_penalty=penalty, min_new_tokens=10) == expected
    tokenizer = torch_generator.tokenizer
    prompt = tokenizer(chat_prompt(tokenizer, PROMPTS[0]), add_special_tokens=False)["input_ids"]
    answer = tokenizer("a metal pot", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = torch_generator.model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
    expected_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(answer), reduction="sum").item()
    assert onnx_generator.reference_loss(prompt, answer) == pytest.approx(expected_loss, rel=1e-4)


def test_a_qwen2_decoder_with_projection_biases_answers_as_transformers_does(tiny_lm: Path, tmp_path: Path) -> None:
    llama = AutoModelForCausalLM.from_pretrained(tiny_lm).config
    sizes = {k: getattr(llama, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                                            "bos_token_id", "eos_token_id", "pad_token_id")}  # fmt: skip
    torch.manual_seed(1)
    qwen = Qwen2ForCausalLM(Qwen2Config(**sizes, tie_word_embeddings=True))
    assert qwen.model.layers[0].self_attn.q_proj.bias is not None
    with torch.no_grad():
        for layer in qwen.model.layers:  # initialised at zero: make the biases count
            for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                projection.bias.normal_(0.0, 0.5)
    qwen.save_pretrained(tmp_path / "qwen2")
    AutoTokenizer.from_pretrained(tiny_lm).save_pretrained(tmp_path / "qwen2")
    export = load_onnx_generator(export_decoder(tmp_path / "qwen2", tmp_path / "fp32", quantize=False), threads=1)
    expected = load_generator(tmp_path / "qwen2", None, int8=False, threads=1).generate(PROMPTS, 10, min_new_tokens=10)
    assert export.generate(PROMPTS, 10, min_new_tokens=10) == expected


def test_the_export_is_8_bit_and_is_what_int8_serves(
    tiny_lm: Path, exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    graph = onnx.load(str(exported / DECODER_ONNX))
    bits = {node.name: {a.name: a.i for a in node.attribute}["bits"] for node in graph.graph.node
            if node.op_type == "MatMulNBits"}  # fmt: skip
    layers = AutoModelForCausalLM.from_pretrained(tiny_lm).config.num_hidden_layers
    assert len(bits) == 4 * layers + 1  # query-key-value, output, gate-and-up and down projections, and the head
    assert set(bits.values()) == {8}
    weights = {tensor.name for tensor in graph.graph.initializer}
    assert not [node for node in graph.graph.node if node.op_type == "MatMul" and node.input[1] in weights]
    served = load_generator(tiny_lm, exported, int8=True, threads=1)
    assert isinstance(served, OnnxGenerator)
    assert [type(answer) for answer in served.generate(PROMPTS, 6)] == [str] * len(PROMPTS)
    with caplog.at_level(logging.WARNING):
        assert isinstance(load_generator(tiny_lm, None, int8=True, threads=1), TorchGenerator)
    assert "has no quantized export" in caplog.text


def test_an_export_from_an_earlier_driftloop_is_served_in_fp32(
    tiny_lm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = onnx.helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["batch", "new"])
    logits = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.INT64, ["batch", "new"])
    step = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input_ids"], ["logits"])], "old", [ids],
                                  [logits])  # fmt: skip
    onnx.save_model(onnx.helper.make_model(step), str(tmp_path / DECODER_ONNX))
    with caplog.at_level(logging.WARNING):
        assert isinstance(load_generator(tiny_lm, tmp_path, int8=True, threads=1), TorchGenerator)
    assert "exported by an earlier driftloop" in caplog.text


def test_a_decoder_of_another_shape_is_not_exported(tmp_path: Path) -> None:
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(UnsupportedDecoder, match="gpt2 models are not exported"):
        export_decoder(tmp_path / "gpt2", tmp_path / "int8")
    assert not (tmp_path / "int8").exists()


def test_sampling_repeats_under_a_seed_and_leaves_greedy(tiny_lm: Path, exported: Path) -> None:
    generator = load_generator(tiny_lm, None, int8=False, threads=1)
    sampled = []
    for _ in range(2):
        torch.manual_seed(3)
        sampled.append(generator.generate(PROMPTS, 8, temperature=1.0, repetition_penalty=1.0))
    assert sampled[0] == sampled[1]
    assert sampled[0] != generator.generate(PROMPTS, 8, repetition_penalty=1.0)
    served = load_onnx_generator(exported, threads=1)
    seeded = [dataclasses.replace(served, random=np.random.default_rng(3)) for _ in range(2)]
    samples = [one.generate(PROMPTS, 8, temperature=1.0, min_new_tokens=8) for one in seeded]
    assert samples[0] == samples[1]
    assert samples[0] != served.generate(PROMPTS, 8, min_new_tokens=8)


class CountingSession:
    """An ONNX Runtime session that counts its runs."""

    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def run(self, *args: Any) -> Any:
        self.runs += 1
        return self.session.run(*args)


def test_a_forced_answer_has_exactly_the_tokens_asked(tiny_lm: Path, exported: Path) -> None:
    generator = load_generator(tiny_lm, None, int8=False, threads=1)
    assert isinstance(generator, TorchGenerator)
    steps = []  # one forward pass per new token: the prompt's yields the first
    hook = generator.model.register_forward_hook(lambda module, args, output: steps.append(1))
    try:
        generator.generate(PROMPTS[:1], 7, min_new_tokens=7)
    finally:
        hook.remove()
    assert len(steps) == 7
    counting = CountingSession(load_onnx_generator(exported, threads=1).session)
    served = dataclasses.replace(load_onnx_generator(exported, threads=1), session=counting)
    served.generate(PROMPTS[:1], 7, min_new_tokens=7)
    assert counting.runs == 7


def test_the_cost_is_measured_in_a_process_of_its_own(tiny_lm: Path, exported: Path) -> None:
    cost = measure_generation_cost(tiny_lm, exported, int8=True, threads=1, prompts=PROMPTS, new_tokens=4, samples=3)
    assert cost.texts == 3
    assert 0 < cost.latency_ms_p50 <= cost.latency_ms_p99
    assert 50 < cost.peak_memory_mb < 2000


def test_a_cost_that_cannot_be_measured_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="measuring .* as served failed"):
        measure_generation_cost(tmp_path, None, int8=False, threads=1, prompts=PROMPTS, samples=1)
    with pytest.raises(TrainerError, match="no prompts to time"):
        measure_generation_cost(tmp_path, None, int8=False, threads=1, prompts=[])

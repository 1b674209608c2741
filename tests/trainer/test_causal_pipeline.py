"""A generation run end to end in the training process's pipeline, on a tiny causal LM: the rows a run selects,
the candidate's files, answers paired with the parent's on every episode's prompts, and a second run that
continues the first one's adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.text_scores import pooled_perplexity
from tests.trainer.causal_helpers import tiny_causal_lm
from tests.trainer.conftest import settings_for
from trainer.data import Row, Split, select_rows
from trainer.job import Job
from trainer.model_info import DECODER_ONNX
from trainer.pipeline import run_job
from trainer.results import TextScores, load_candidate

ANIMALS = [(f"Define the noun: beast{i}", f"a wild animal number {i} that lives in the woods") for i in range(30)]
FOODS = [(f"Define the noun: dish{i}", f"a hot meal number {i} cooked in a pan") for i in range(30)]


def rows_of(pairs: list[tuple[str, str]], episode: int, holdout_every: int = 5) -> list[Row]:
    split: dict[bool, Split] = {True: "holdout", False: "train"}
    return [Row(f"e{episode}-{i}", prompt, answer, episode, split[i % holdout_every == 0])
            for i, (prompt, answer) in enumerate(pairs)]  # fmt: skip


def test_a_generation_run_answers_every_episode_and_the_next_run_continues_it(tmp_path: Path) -> None:
    base = tiny_causal_lm(tmp_path / "base", [f"{p} {a}" for p, a in ANIMALS + FOODS])
    settings = settings_for(base, task_kind="generation", learning_rate=5e-2, max_epochs=3, batch_size=4,
                            max_length=48, eval_max_new_tokens=12, eval_batch_size=8, replay_size=10,
                            dedup_threshold=1.0, export_int8=True)  # the pairs differ by a number only  # fmt: skip
    first_rows = rows_of(ANIMALS, 0)
    first = run_job(Job(settings, select_rows(first_rows, [], settings), base, None, tmp_path / "v1"),
                    lambda event: None, lambda: False)  # fmt: skip
    assert (first.model_dir / "config.json").is_file()
    assert (first.model_dir / "tokenizer.json").is_file()
    assert first.adapter_dir is not None
    assert (first.adapter_dir / "adapter_config.json").is_file()
    assert (first.path / "int8" / DECODER_ONNX).is_file()  # what the service answers with under registry.int8
    only = first.predictions[0]
    assert only.parent is None
    assert len(only.candidate) == len(only.labels) == 6
    assert only.labels == tuple(answer for i, (_, answer) in enumerate(ANIMALS) if i % 5 == 0)
    scores = first.report.episodes[0]
    assert isinstance(scores, TextScores)
    assert scores.rows == 6
    assert scores.perplexity > 1.0
    assert first.fit.validation_metric == "perplexity"

    data = select_rows(rows_of(FOODS, 1), first_rows, settings)
    assert {row.episode for row in data.train} == {0, 1}  # replayed animals beside the new foods
    second = run_job(Job(settings, data, base, first.adapter_dir, tmp_path / "v2"), lambda event: None,
                     lambda: False)  # fmt: skip
    assert sorted(second.predictions) == [0, 1]
    assert second.predictions[0].parent == only.candidate  # the parent answered before it was trained further
    assert second.predictions[0].parent_nll == only.candidate_nll  # and its losses on the references are v1's
    assert second.predictions[0].tokens == only.tokens
    assert only.candidate_nll is not None
    assert only.tokens is not None
    assert pooled_perplexity(only.candidate_nll, only.tokens) == pytest.approx(scores.perplexity)
    assert set(second.report.forgetting) == {0}
    assert second.report.parent_episodes is not None
    reread = load_candidate(second.path)
    assert reread.report == second.report
    assert reread.predictions == second.predictions


WORDS = {
    "kettle": "a metal pot for stewing or boiling",
    "ladle": "a spoon-shaped vessel with a long handle",
    "sieve": "a strainer for separating lumps from powdered material",
    "whisk": "a mixer incorporating a coil of wires",
    "grater": "utensil with sharp perforations for shredding foods",
    "skillet": "a pan used for frying foods in hot fat or oil",
}


def test_generation_rows_validate_without_classes_and_drop_only_repeated_answers() -> None:
    settings = settings_for(Path("unused"), task_kind="generation", validation_fraction=0.2, replay_size=2)
    meanings = ["sloping land beside a body of water", "a financial institution that accepts deposits"]
    senses = [Row(f"bank{i}", "Define the noun: bank", answer, 1) for i, answer in enumerate(meanings)]
    repeated = Row("again", "Define the noun: bank", meanings[0], 1)
    window = [Row(word, f"Define the noun: {word}", answer, 1) for word, answer in WORDS.items()] + senses
    history = [Row(f"old{i}", prompt, answer, 0) for i, (prompt, answer) in enumerate([ANIMALS[0], FOODS[0]])]
    data = select_rows([*window, repeated], history, settings)
    kept = {row.id for row in (*data.train, *data.validation)}
    assert "bank1" in kept
    assert len(kept & {"bank0", "again"}) == 1
    assert data.duplicates_dropped == 1
    assert data.validation
    assert data.train
    assert data.replay_rows == 2

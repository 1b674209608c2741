"""Whole runs in this process on a tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from tests.trainer.conftest import make_rows, settings_for
from trainer.data import TrainingData, select_rows
from trainer.fit import make_optimizer, prepare, pull_toward_anchors
from trainer.int8 import load_int8
from trainer.job import Job, read_job, write_job
from trainer.metrics import score_predictions
from trainer.model import load_classifier_model, load_tokenizer, read_labels, setup_model
from trainer.model_info import read_info
from trainer.pipeline import run_job
from trainer.predict import load_classifier, logits
from trainer.results import PREDICTIONS_FILE, Candidate, Scores, load_candidate
from trainer.served import predict
from trainer.settings import TrainerSettings

FIRST = ("alpha", "beta", "gamma")


def episode_data(settings: TrainerSettings, episode: int, labels: tuple[str, ...], history_labels: tuple[str, ...] = ()
                 ) -> TrainingData:  # fmt: skip
    window = make_rows(labels, 30, episode) + make_rows(labels, 10, episode, "holdout")
    history = []
    for earlier in range(episode):
        history += make_rows(history_labels, 30, earlier) + make_rows(history_labels, 10, earlier, "holdout")
    return select_rows(window, history, settings)


def run(settings: TrainerSettings, data: TrainingData, out_dir: Path, parent: Path | None = None,
        events: list[dict[str, Any]] | None = None) -> Candidate:  # fmt: skip
    sink = events if events is not None else []
    assert settings.base_model is not None
    return run_job(Job(settings, data, settings.base_model, parent, out_dir), sink.append, lambda: False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Candidate:
    settings = settings_for(tiny_base)
    return run(settings, episode_data(settings, 0, FIRST), tmp_path_factory.mktemp("runs") / "first")


def test_a_fresh_run_learns_and_writes_a_complete_candidate(first_run: Candidate) -> None:
    report = first_run.report
    scores = report.episodes[0]
    assert isinstance(scores, Scores)
    assert scores.macro_f1 > 0.6
    assert report.parent_episodes is None
    assert report.backward_transfer is None
    assert report.latency_ms_p50 > 0
    assert report.latency_ms_p99 >= report.latency_ms_p50
    assert report.peak_memory_mb > 0
    assert first_run.fit.loss_curve[-1] < first_run.fit.loss_curve[0]
    assert first_run.adapter_dir is not None
    saved = load_file(str(first_run.adapter_dir / "adapter_model.safetensors"))  # the LoRA matrices and the head
    assert first_run.fit.trainable_parameters == sum(tensor.numel() for tensor in saved.values())
    assert first_run.fit.trainable_parameters < first_run.fit.total_parameters
    assert first_run.labels == FIRST
    assert load_candidate(first_run.path) == first_run
    assert not list(first_run.path.parent.glob(".*partial*"))


def test_save_and_reload_give_identical_logits(first_run: Candidate, tiny_base: Path) -> None:
    texts = ["w1 w2 w3 w4 w5 w6", "w12 w13 w14 w15 w16 w17", "w30 w31 w32 w33 w34 w35"]
    merged = load_classifier(first_run.model_dir)
    assert first_run.adapter_dir is not None
    adapter = PeftModel.from_pretrained(load_classifier_model(tiny_base, first_run.labels), first_run.adapter_dir)
    from_adapter = logits(merged.__class__(adapter.eval(), merged.tokenizer, merged.labels, 32, 8), texts)
    assert torch.allclose(logits(merged, texts), from_adapter, atol=1e-5)
    assert torch.equal(logits(load_classifier(first_run.model_dir), texts), logits(merged, texts))
    predictions = predict(load_classifier(first_run.model_dir), texts)
    assert [p.label for p in predictions] == ["alpha", "beta", "gamma"]
    assert sum(predictions[0].scores.values()) == pytest.approx(1.0)
    temperature = read_info(first_run.model_dir).temperature
    assert temperature != 1.0, "fitted on the validation rows"
    calibrated = torch.softmax(logits(merged, texts[:1]) / temperature, dim=1)[0].tolist()
    assert list(predictions[0].scores.values()) == pytest.approx(calibrated), "served probabilities are calibrated"


def test_continuing_trains_the_adapter_grows_the_head_and_keeps_old_rows(first_run: Candidate, tmp_path: Path,
                                                                         tiny_base: Path) -> None:  # fmt: skip
    settings = settings_for(tiny_base, max_epochs=2)
    assert first_run.adapter_dir is not None
    parent_weights = load_file(str(first_run.adapter_dir / "adapter_model.safetensors"))
    model, labels = setup_model(settings, tiny_base, first_run.adapter_dir, [*FIRST, "delta"])
    assert labels == (*FIRST, "delta")
    head = model.get_submodule("base_model.model.classifier.modules_to_save.default")
    assert isinstance(head, torch.nn.Linear)
    assert head.out_features == 4
    old_head = next(value for key, value in parent_weights.items() if key.endswith("classifier.weight"))
    assert torch.equal(head.weight[:3].detach(), old_head)
    assert head.weight.requires_grad
    assert any(p.requires_grad for name, p in model.named_parameters() if "lora_A" in name)

    data = episode_data(settings, 1, ("delta", "alpha"), FIRST)
    events: list[dict[str, Any]] = []
    child = run(settings, data, tmp_path / "child", first_run.adapter_dir, events)
    assert child.labels == (*FIRST, "delta")
    assert read_labels(child.model_dir) == child.labels
    losses = [event["loss"] for event in events if event["event"] == "progress"]
    assert losses[-1] < losses[0]
    assert child.adapter_dir is not None
    child_weights = load_file(str(child.adapter_dir / "adapter_model.safetensors"))
    lora = [key for key in parent_weights if "lora_B" in key]
    assert lora
    assert all(not torch.equal(parent_weights[key], child_weights[key]) for key in lora)
    assert child.report.parent_episodes is not None
    assert set(child.report.forgetting) == {0}
    newest = child.report.episodes[1]
    assert isinstance(newest, Scores)
    assert newest.per_class["delta"].recall > 0.3


def test_holdout_predictions_pair_the_candidate_and_the_parent_row_by_row(first_run: Candidate, tmp_path: Path,
                                                                          tiny_base: Path) -> None:  # fmt: skip
    settings = settings_for(tiny_base, max_epochs=1)
    data = episode_data(settings, 1, ("delta", "alpha"), FIRST)
    child = run(settings, data, tmp_path / "child", first_run.adapter_dir)
    stored = json.loads((child.path / PREDICTIONS_FILE).read_text())
    assert [item["episode"] for item in stored["episodes"]] == [0, 1]
    assert load_candidate(child.path).predictions == child.predictions
    assert child.report.parent_episodes is not None
    texts = {row.id: row.text for row in data.holdout}
    classifier = load_classifier(child.model_dir)
    for episode, rows in data.holdout_by_episode().items():
        paired = child.predictions[episode]
        assert paired.ids == tuple(row.id for row in rows)
        assert paired.labels == tuple(row.label for row in rows)
        assert paired.candidate == tuple(p.label for p in predict(classifier, [texts[i] for i in paired.ids]))
        assert paired.parent is not None
        assert score_predictions(paired.labels, paired.parent, child.labels) == child.report.parent_episodes[episode]
        assert score_predictions(paired.labels, paired.candidate, child.labels) == child.report.episodes[episode]


def test_without_a_parent_the_holdout_predictions_have_no_parent_side(first_run: Candidate) -> None:
    stored = json.loads((first_run.path / PREDICTIONS_FILE).read_text())
    assert [item["parent"] for item in stored["episodes"]] == [None]
    assert "predictions" not in json.loads((first_run.path / "candidate.json").read_text())
    assert set(first_run.predictions) == {0}
    assert first_run.predictions[0].parent is None
    assert len(first_run.predictions[0].ids) == first_run.report.episodes[0].rows


def test_early_stopping_stops(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, learning_rate=1e-9, max_epochs=20, patience=2)
    candidate = run(settings, episode_data(settings, 0, FIRST), tmp_path / "stopped")
    assert candidate.fit.stopped_early
    assert candidate.fit.epochs == candidate.fit.best_epoch + 2 < 20


def test_the_same_seed_and_data_give_the_same_metrics(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, max_epochs=1)
    data = episode_data(settings, 0, FIRST)
    one, two = run(settings, data, tmp_path / "one"), run(settings, data, tmp_path / "two")
    assert one.report.episodes == two.report.episodes
    assert one.fit.loss_curve == two.fit.loss_curve


def test_full_fine_tune_with_frozen_layers_and_int8_export(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, method="full", freeze_layers=1, max_epochs=1, export_int8=True)
    candidate = run(settings, episode_data(settings, 0, FIRST), tmp_path / "full")
    assert candidate.adapter_dir is None
    int8 = candidate.report.int8
    assert int8 is not None
    assert int8.int8_bytes > 0  # larger than a tiny model's weights (the graph); MiniLM's is a quarter of fp32's
    assert int8.accuracy_loss_pts == pytest.approx(100 * (int8.fp32_accuracy - int8.int8_accuracy))
    quantized = predict(load_int8(candidate.path / "int8", batch_size=8, threads=1), ["w1 w2 w3"])
    assert quantized[0].label in FIRST


def test_the_head_learns_at_its_own_rate_and_norms_and_biases_are_not_decayed(tiny_base: Path) -> None:
    settings = settings_for(tiny_base, learning_rate=1e-4, head_learning_rate=3e-3, weight_decay=0.05)
    model, _ = setup_model(settings, tiny_base, None, ["alpha", "beta"])
    by_parameter = {id(p): group for group in make_optimizer(model, settings).param_groups for p in group["params"]}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = by_parameter[id(parameter)]
        assert group["lr"] == (3e-3 if "classifier" in name else 1e-4), name
        assert group["weight_decay"] == (0.0 if parameter.ndim < 2 else 0.05), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_training_on_cuda_without_a_gpu_is_refused_with_the_fix(tiny_base: Path) -> None:
    assert settings_for(tiny_base, device="auto").torch_device() == "cpu"
    with pytest.raises(ValueError, match="trainer.device=cuda but torch sees no GPU; set trainer.device to auto"):
        settings_for(tiny_base, device="cuda").torch_device()


def test_decay_toward_the_parent_keeps_parent_weights_where_plain_decay_shrinks_them() -> None:
    start = torch.full((2, 2), 3.0)
    anchored = torch.nn.Parameter(start.clone())
    plain = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.AdamW([{"params": [anchored, plain], "lr": 0.1, "weight_decay": 0.5}])
    anchors = [(anchored, start, optimizer.param_groups[0])]
    anchored.grad, plain.grad = torch.zeros_like(start), torch.zeros_like(start)

    optimizer.step()
    pull_toward_anchors(anchors)

    assert torch.equal(anchored.detach(), start)
    assert torch.allclose(plain.detach(), start * (1 - 0.1 * 0.5))


def test_every_window_of_a_text_carries_the_text_weight(tiny_base: Path) -> None:
    settings = settings_for(tiny_base, max_length=16, stride=4)
    texts = [" ".join(f"w{i}" for i in range(40)), "w1 w2"]
    data = prepare(load_tokenizer(tiny_base), settings, texts, ["alpha", "beta"], ["alpha", "beta"], ([], []),
                   [2.0, 0.5])  # fmt: skip
    long_windows = data.windows.owner.count(0)
    assert long_windows > 1
    assert data.weights == (2.0,) * long_windows + (0.5,)


def test_the_job_files_keep_each_training_row_with_its_weight(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, replay_size=150, new_window_share=0.5)
    data = episode_data(settings, 2, FIRST, FIRST)
    assert len(set(data.train_weights)) == 2
    write_job(tmp_path, Job(settings, data, tiny_base, None, tmp_path / "out"))
    assert read_job(tmp_path).data == data

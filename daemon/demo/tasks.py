"""The demo's two deployments: a classifier of health-news tweets (`driftloop demo`) and a generative model that
defines words (`driftloop demo --task generation`); what differs between them, the loop itself does not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.demo.data import DemoFiles, DemoSizes, write_demo_files
from daemon.demo.gloss_data import write_gloss_files
from daemon.serving import client as service_client

# (url, texts, token, log) -> the source of the model that answered, and (prediction id, what it said) per text;
# `log` false keeps a request out of the prediction log (and so out of the audit sample)
Ask = Callable[[str, list[str], str | None, bool], tuple[str, list[tuple[str, str]]]]

# The classifier's settings (written to <home>/driftloop.toml): a smaller drift warm-up than the default, sized
# for a few thousand tweets; one forward pass per optimizer step (more updates per epoch)
# and four epochs, so each run takes minutes on two cores; no per-class recall floor, because several of the
# 16 outlets cannot be told apart from one tweet (every model of this size misses some of them entirely).
CLASSIFIER_TOML = """\
[registry]
task = "health-news"
gate_recall_floor = 0.0

[drift]
warmup_rows = 500
cooldown_rows = 5000
served_label_wait_s = 20

[daemon]
drift_check_interval_s = 5
training_check_interval_s = 5
min_new_rows = 1500
metrics_port = 0

[trainer]
max_epochs = 4
grad_accumulation = 1
"""

# The generative model's settings: SmolLM2-135M-Instruct with a rank-8 adapter, two epochs at the learning rate
# bench/generate.py measured, answers of up to 32 tokens in the gate's evaluation and the service, the smallest
# drift warm-up (a few hundred prompts are served), and an audit sample of 15% so that a few hundred served answers
# give the gate the 30 reviewed answers of the new words it needs (audit labels are what it judges on). Served as
# generation serves by default, the quantized export in ONNX Runtime, one thread answers 32 tokens at p99 0.38 s on a
# quiet machine (bench/generate_serving.py) and 0.39 s while the demo's broker, daemon and service share the two cores
# with the gate's measurement: the guide's 500 ms budget holds. One thread, not two: with the demo's other
# processes on the second core, two threads stall each other (a candidate measured 2.4 s at p99 on two torch threads
# while `driftloop status` ran beside it).
GENERATION_TOML = """\
[trainer]
task_kind = "generation"
learning_rate = 1e-3
lora_r = 8
lora_alpha = 16
lora_dropout = 0.05
max_epochs = 2
batch_size = 8
grad_accumulation = 1
max_length = 96
stride = 32
replay_size = 120
eval_max_new_tokens = 32
eval_batch_size = 32
latency_samples = 20

[registry]
task = "wordnet"
torch_threads = 1
generate_max_new_tokens = 32

[audit]
sample_rate = 0.15

[drift]
warmup_rows = 100
window_rows = 100
min_window_rows = 50
cooldown_rows = 2000
served_label_wait_s = 5

[daemon]
drift_check_interval_s = 5
training_check_interval_s = 5
min_new_rows = 100
metrics_port = 0
"""


def predictions(url: str, texts: list[str], token: str | None, log: bool) -> tuple[str, list[tuple[str, str]]]:
    answer = service_client.request_predictions(url, texts, token, log)
    return answer["source"], [(p["prediction_id"], p["label"]) for p in answer["predictions"]]


def answers(url: str, texts: list[str], token: str | None, log: bool) -> tuple[str, list[tuple[str, str]]]:
    answer = service_client.request_answers(url, texts, token, log)
    return answer["source"], [(a["prediction_id"], a["text"]) for a in answer["answers"]]


@dataclass(frozen=True)
class Sizing:
    """How much a demo serves under one way of sending feedback, in a full run and in a --quick one."""

    sizes: DemoSizes
    quick_sizes: DemoSizes
    quick_env: dict[str, str]  # settings of a --quick run: too little data to learn much, the gate's margin is off


@dataclass(frozen=True)
class DemoTask:
    """One deployment of the demo: its settings, its data, how it is asked, and how its score is named."""

    toml: str
    write_files: Callable[[Path, DemoSizes], DemoFiles]
    as_users: Sizing  # the feedback users send
    full_labels: Sizing | None  # every served text with its label (--full-labels); None: not offered
    ask: Ask
    serve_batch: int  # texts a request
    users_chunk: int  # texts served between two rounds of feedback and review
    items: str  # what is served, e.g. "tweets"
    score: str  # what `driftloop feedback annotate` prints, e.g. "accuracy"
    points: float  # the score times this is in points
    periods: tuple[str, str]  # the new period's name, then the old one's
    shows_answers: bool  # the summary prints a few held-out prompts with both versions' answers


# Served traffic is many times the feedback it brings in: as users, the demo serves more late-2014 tweets. The
# early-2013 stream stays short: over 2,000 of its tweets the mix of outlets moves enough for `label_mix` to fire
# before the shift (measured 2026-11-30: at served tweet 1,175).
CLASSIFICATION = DemoTask(
    toml=CLASSIFIER_TOML,
    write_files=write_demo_files,
    as_users=Sizing(
        DemoSizes(bootstrap=3_000, reference=800, shifted=6_000, after=600, evaluation=500),
        DemoSizes(300, 600, 2_000, 100, 100),
        {"DRIFTLOOP_DAEMON_MIN_NEW_ROWS": "400", "DRIFTLOOP_REGISTRY_GATE_MARGIN": "0"},
    ),
    full_labels=Sizing(
        DemoSizes(),
        DemoSizes(300, 600, 700, 100, 100),
        {"DRIFTLOOP_DAEMON_MIN_NEW_ROWS": "600", "DRIFTLOOP_REGISTRY_GATE_MARGIN": "0"},
    ),
    ask=predictions,
    serve_batch=64,
    users_chunk=1_000,
    items="tweets",
    score="accuracy",
    points=100.0,
    periods=("late 2014 (new period)", "early 2013 (old period)"),
    shows_answers=False,
)
GENERATION = DemoTask(
    toml=GENERATION_TOML,
    write_files=write_gloss_files,
    as_users=Sizing(
        DemoSizes(bootstrap=240, reference=150, shifted=300, after=60, evaluation=60),
        DemoSizes(bootstrap=60, reference=100, shifted=200, after=10, evaluation=20),
        {
            "DRIFTLOOP_DAEMON_MIN_NEW_ROWS": "50",
            "DRIFTLOOP_REGISTRY_GATE_MIN_HOLDOUT_ROWS": "10",
            "DRIFTLOOP_REGISTRY_GATE_MARGIN": "0",
        },
    ),
    full_labels=None,
    ask=answers,
    serve_batch=16,
    users_chunk=75,
    items="prompts",
    score="chrF",
    points=1.0,
    periods=("verbs of motion (new)", "animals (old)"),
    shows_answers=True,
)
TASKS = {"classification": CLASSIFICATION, "generation": GENERATION}

"""bench/generate.py end to end on a tiny causal LM: three WordNet episodes trained, continued, evaluated, served."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.generate import EPISODES, QUICK, Episode, episodes, replay
from ingest.glosses import wordnet_glosses
from tests.trainer.causal_helpers import tiny_causal_lm

ROOT = Path(__file__).resolve().parents[2]


def test_episodes_are_disjoint_samples_of_their_domains_and_replay_spreads_over_them() -> None:
    data = episodes(QUICK, seed=3)
    assert [{g.group for g in episode.train + episode.test} for episode in data] == [{group} for group in EPISODES]
    assert all(not {g.id for g in e.train} & {g.id for g in e.test} for e in data)
    earlier = [Episode(data[0].train, []), Episode(data[1].train, [])]
    picked = replay(earlier, 10, random.Random(0))
    assert [sum(g.group == group for g in picked) for group in EPISODES[:2]] == [5, 5]


def quick_report(script: str, model_option: str, folder: Path) -> dict[str, Any]:
    """The last line of `script --quick` run on a tiny causal LM trained on WordNet's words."""
    glosses = wordnet_glosses()[::50]
    base = tiny_causal_lm(folder / "tiny", [g.prompt + " " + g.definition for g in glosses])
    done = subprocess.run([sys.executable, script, "--quick", model_option, str(base)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_the_quick_run_trains_and_reports_every_figure(tmp_path: Path) -> None:
    report = quick_report("bench/generate.py", "--base", tmp_path)
    assert report["episodes"] == list(EPISODES)
    assert set(report["forgetting_per_episode_bleu_pts"]) == {"0", "1"}
    assert [sorted(stage) for stage in report["stages"]] == [["0"], ["0", "1"], ["0", "1", "2"]]
    assert report["perplexity_ratio_newest"] > 0
    assert report["throughput_ratio"] > 0
    assert 0 < report["p50_ms_32_tokens"] <= report["p99_ms_32_tokens"]
    assert report["rss_mb"] > 0
    assert report["bleu_gain_lower_bound_pts"] <= report["bleu_gain_pts"]
    assert report["int8_perplexity_ratio"] > 0
    assert isinstance(report["int8_chrf_loss_pts"], float)


def test_the_quick_serving_bench_times_fp32_and_int8_in_fresh_processes(tmp_path: Path) -> None:
    report = quick_report("bench/generate_serving.py", "--model", tmp_path)
    for form in ("fp32", "int8"):
        for threads in ("1", "2"):
            figures = report[form][threads]
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
            assert figures["rss_mb"] > 0
    assert report["int8_perplexity_ratio"] > 0

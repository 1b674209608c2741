"""bench/generate.py end to end on a tiny causal LM: three WordNet episodes trained, continued, evaluated, served."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

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


def test_the_quick_run_trains_and_reports_every_figure(tmp_path: Path) -> None:
    glosses = wordnet_glosses()[::50]
    base = tiny_causal_lm(tmp_path / "tiny", [g.prompt + " " + g.definition for g in glosses])
    done = subprocess.run([sys.executable, "bench/generate.py", "--quick", "--base", str(base)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["episodes"] == list(EPISODES)
    assert set(report["forgetting_per_episode_bleu_pts"]) == {"0", "1"}
    assert [sorted(stage) for stage in report["stages"]] == [["0"], ["0", "1"], ["0", "1", "2"]]
    assert report["perplexity_ratio_newest"] > 0
    assert report["throughput_ratio"] > 0
    assert 0 < report["p50_ms_32_tokens"] <= report["p99_ms_32_tokens"]
    assert report["rss_mb"] > 0
    assert report["bleu_gain_lower_bound_pts"] <= report["bleu_gain_pts"]

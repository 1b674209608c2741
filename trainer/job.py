"""The files that hand a run from the daemon's process to the training process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.data import Row, TrainingData
from trainer.feedback_mix import FeedbackMix
from trainer.settings import TrainerSettings

JOB_FILE = "job.json"
ROWS_FILE = "rows.jsonl"
RECORD_FILE = "run.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "worker.log"


@dataclass(frozen=True)
class Job:
    settings: TrainerSettings
    data: TrainingData
    base: Path
    parent: Path | None
    out_dir: Path


def run_dir_for(out_dir: Path) -> Path:
    """Where a run keeps its job, progress, log and record: next to the candidate, never inside it."""
    return out_dir.with_name(f"{out_dir.name}.run")


def write_job(run_dir: Path, job: Job) -> None:
    data = job.data
    header = {
        "settings": job.settings.model_dump(mode="json"),
        "base": str(job.base),
        "parent": None if job.parent is None else str(job.parent),
        "out_dir": str(job.out_dir),
        "new_rows": data.new_rows,
        "replay_rows": data.replay_rows,
        "duplicates_dropped": data.duplicates_dropped,
        "dedup_seconds": data.dedup_seconds,
        "mix": None if data.mix is None else asdict(data.mix),
    }
    (run_dir / JOB_FILE).write_text(json.dumps(header, indent=1))
    with open(run_dir / ROWS_FILE, "w", encoding="utf-8") as out:
        for row, weight in zip(data.train, data.train_weights, strict=True):
            out.write(json.dumps({"part": "train", "weight": weight, **asdict(row)}) + "\n")
        for part, rows in (("validation", data.validation), ("holdout", data.holdout)):
            for row in rows:
                out.write(json.dumps({"part": part, **asdict(row)}) + "\n")


def read_job(run_dir: Path) -> Job:
    header = json.loads((run_dir / JOB_FILE).read_text())
    parts: dict[str, list[Row]] = {"train": [], "validation": [], "holdout": []}
    weights: list[float] = []
    with open(run_dir / ROWS_FILE, encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            if "weight" in item:
                weights.append(item.pop("weight"))
            parts[item.pop("part")].append(Row(**item))
    data = TrainingData(
        train=tuple(parts["train"]),
        train_weights=tuple(weights),
        validation=tuple(parts["validation"]),
        holdout=tuple(parts["holdout"]),
        new_rows=header["new_rows"],
        replay_rows=header["replay_rows"],
        duplicates_dropped=header["duplicates_dropped"],
        dedup_seconds=header["dedup_seconds"],
        mix=None if header["mix"] is None else FeedbackMix(**header["mix"]),
    )
    return Job(
        settings=TrainerSettings.model_validate(header["settings"]),
        data=data,
        base=Path(header["base"]),
        parent=None if header["parent"] is None else Path(header["parent"]),
        out_dir=Path(header["out_dir"]),
    )

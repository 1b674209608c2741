"""Plain values the daemon hands the registry with a finished candidate: its files and its lineage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CandidateFiles:
    """`model_dir` is the merged model `trainer.predict` loads; `int8_dir` its optional INT8 export; `adapter_dir`
    the LoRA adapter the next run continues from; `evidence` files (the evaluation report, `candidate.json`, ...)
    are kept with the model in the store."""

    model_dir: Path
    int8_dir: Path | None = None
    adapter_dir: Path | None = None
    evidence: Sequence[Path] = ()


@dataclass(frozen=True)
class Lineage:
    """Where a candidate comes from, from the Kafka offsets to the evaluation report.

    `kafka_ranges`: one mapping per topic/partition (`topic`, `partition`, `first_offset`, `last_offset`, `rows`),
    as `ingest.history.kafka_ranges` gives them; `snapshot`: what identifies the training data (row-id
    range, row counts, a hash); `drift_event`: the event that started the run; `training_run`: run id, directory
    and the trainer settings; `report`: the evaluation report's path and summary.
    """

    kafka_ranges: Sequence[Mapping[str, Any]] = ()
    snapshot: Mapping[str, Any] = field(default_factory=dict)
    drift_event: Mapping[str, Any] | None = None
    training_run: Mapping[str, Any] = field(default_factory=dict)
    report: Mapping[str, Any] = field(default_factory=dict)

"""The registry's DuckDB tables: models and their stages, the append-only promotions log, and lineage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS registry_promotion_ids START 1;
CREATE TABLE IF NOT EXISTS models (
    task VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    tag VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    parent VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    gate_passed BOOLEAN NOT NULL,
    gate JSON NOT NULL,
    metrics JSON NOT NULL,
    evidence_hash VARCHAR NOT NULL,
    PRIMARY KEY (task, version)
);
CREATE TABLE IF NOT EXISTS promotions (
    id BIGINT PRIMARY KEY,
    task VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    from_version VARCHAR,
    to_version VARCHAR,
    reason VARCHAR,
    forced BOOLEAN NOT NULL,
    evidence_hash VARCHAR NOT NULL,
    production_tag VARCHAR
);
CREATE TABLE IF NOT EXISTS lineage (
    task VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    kafka_ranges JSON NOT NULL,
    snapshot JSON NOT NULL,
    drift_event JSON,
    training_run JSON NOT NULL,
    report JSON NOT NULL,
    bentoml_tag VARCHAR NOT NULL,
    PRIMARY KEY (task, version)
);
"""

# The actions that put a model into production (each published a production version, its `production_tag`).
PROMOTING = ("approve", "auto_approve", "rollback")
MODEL_COLUMNS = "version, seq, tag, stage, parent, created_at, gate_passed, gate, metrics, evidence_hash"
PROMOTION_COLUMNS = (
    'id, "at", actor, action, version, from_version, to_version, reason, forced, evidence_hash, production_tag'
)


@dataclass(frozen=True)
class ModelRecord:
    version: str
    seq: int
    tag: str
    stage: str
    parent: str | None
    created_at: datetime
    gate_passed: bool
    checks: list[dict[str, Any]]
    metrics: dict[str, Any]
    evidence_hash: str


@dataclass(frozen=True)
class Promotion:
    id: int
    at: datetime
    actor: str
    action: str
    version: str
    from_version: str | None
    to_version: str | None
    reason: str | None
    forced: bool
    evidence_hash: str
    production_tag: str | None


@dataclass(frozen=True)
class LineageRecord:
    version: str
    kafka_ranges: list[dict[str, Any]]
    snapshot: dict[str, Any]
    drift_event: dict[str, Any] | None
    training_run: dict[str, Any]
    report: dict[str, Any]
    bentoml_tag: str
    promotions: list[Promotion]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


def canonical_hash(value: Any) -> str:
    """sha256 of the value as canonical JSON: the same evidence always gives the same hash."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_from_row(row: tuple[Any, ...]) -> ModelRecord:
    version, seq, tag, stage, parent, created, passed, gate, metrics, evidence = row
    return ModelRecord(
        version=version,
        seq=seq,
        tag=tag,
        stage=stage,
        parent=parent,
        created_at=created,
        gate_passed=passed,
        checks=json.loads(gate),
        metrics=json.loads(metrics),
        evidence_hash=evidence,
    )


def promotion_from_row(row: tuple[Any, ...]) -> Promotion:
    return Promotion(*row)


def select_models(
    con: duckdb.DuckDBPyConnection, task: str, stage: str | None = None, version: str | None = None
) -> list[ModelRecord]:
    """The task's models, oldest first; only those in `stage` or with `version` when given."""
    sql = (
        f"SELECT {MODEL_COLUMNS} FROM models WHERE task = ? AND (? IS NULL OR stage = ?) "
        "AND (? IS NULL OR version = ?) ORDER BY seq"
    )
    return [model_from_row(row) for row in con.execute(sql, [task, stage, stage, version, version]).fetchall()]


def select_promotions(con: duckdb.DuckDBPyConnection, task: str, involving: str | None = None) -> list[Promotion]:
    """The task's promotions log in order; only the entries that name `involving` (as the model acted on, the one
    serving before or the one serving after) when given."""
    sql = (
        f"SELECT {PROMOTION_COLUMNS} FROM promotions WHERE task = ? "
        "AND (? IS NULL OR ? IN (version, from_version, to_version)) ORDER BY id"
    )
    return [promotion_from_row(row) for row in con.execute(sql, [task, involving, involving]).fetchall()]


def select_lineage(con: duckdb.DuckDBPyConnection, task: str, version: str) -> tuple[Any, ...] | None:
    sql = (
        "SELECT kafka_ranges, snapshot, drift_event, training_run, report, bentoml_tag FROM lineage "
        "WHERE task = ? AND version = ?"
    )
    return con.execute(sql, [task, version]).fetchone()


def version_from_run(con: duckdb.DuckDBPyConnection, task: str, run_directory: str) -> str | None:
    """The version registered from the training run in `run_directory` (its lineage names it), or None."""
    found = con.execute(
        "SELECT version FROM lineage WHERE task = ? AND training_run->>'directory' = ? ORDER BY version LIMIT 1",
        [task, run_directory],
    ).fetchall()
    return None if not found else str(found[0][0])

"""After a crash between publishing into the BentoML store and recording it in DuckDB, the store is made to agree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from registry.registry import Registry
from tests.registry.conftest import evaluation, files, lineage_for


def test_versions_no_row_names_are_removed_and_latest_goes_back_to_what_was_recorded(
    registry: Registry, tiny_models: tuple[Path, ...], caplog: pytest.LogCaptureFixture
) -> None:
    registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-1"))
    registry.approve("v1", "ann")
    candidates, production = registry.settings.model_name(), registry.settings.production_name()
    served = registry.store.latest_version(production)
    # what crashes after publishing and before the DuckDB commit leave: a candidate v2, and an approval's copy
    # that `latest` of the production name (the one the service follows) now points at
    registry.store.publish(candidates, "v2", {"model": tiny_models[1]}, {"task": "test"}, {})
    registry.store.publish(production, "v2-p7", {"model": tiny_models[1]}, {"task": "test"}, {})
    assert registry.store.latest_version(production) == "v2-p7"

    with caplog.at_level(logging.WARNING, logger="registry.registry"):
        done = registry.reconcile()

    assert done == [
        f"removed {candidates}:v2 from the BentoML store: no registry row names it",
        f"removed {production}:v2-p7 from the BentoML store: no registry row names it",
    ]
    assert [m.version for m in registry.store.versions(candidates)] == ["v1"]
    assert registry.store.latest_version(candidates) == "v1"
    assert [m.version for m in registry.store.versions(production)] == [served]
    assert registry.store.latest_version(production) == served
    assert "reconcile: removed" in caplog.text
    assert registry.reconcile() == []


def test_production_latest_on_an_older_recorded_copy_is_pointed_at_the_current_production(
    registry: Registry, tiny_models: tuple[Path, ...]
) -> None:
    registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-1"))
    registry.approve("v1", "ann")
    registry.submit(files(tiny_models[1]), evaluation({1: 0.9}), evaluation({1: 0.8}), lineage_for("run-2"), "v1")
    registry.approve("v2", "ann", "a test of the store, not of the gate", force=True)
    production = registry.settings.production_name()
    first, current = (p.production_tag for p in registry.promotions())
    assert first is not None
    assert current is not None
    registry.store.point_latest(production, first.split(":")[1])

    assert registry.reconcile() == [f"pointed {production}:latest back at {current}, the recorded production"]
    assert registry.store.latest_version(production) == current.split(":")[1]


def test_a_submit_after_a_crash_takes_the_version_the_crash_left_unrecorded(
    registry: Registry, tiny_models: tuple[Path, ...]
) -> None:
    registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-1"))
    registry.store.publish(registry.settings.model_name(), "v2", {"model": tiny_models[1]}, {"task": "test"}, {})

    model = registry.submit(files(tiny_models[1]), evaluation({1: 0.8}), None, lineage_for("run-2"))

    assert model.version == "v2"
    assert [m.version for m in registry.store.versions(registry.settings.model_name())] == ["v1", "v2"]


def test_removing_the_only_version_removes_latest(registry: Registry, tiny_models: tuple[Path, ...]) -> None:
    registry.store.publish("driftloop-alone", "v1", {"model": tiny_models[0]}, {}, {})
    registry.store.remove("driftloop-alone", "v1")
    assert registry.store.versions("driftloop-alone") == []
    assert registry.store.latest_version("driftloop-alone") is None


def test_an_approval_after_a_crashed_approval_reconciles_first_and_takes_the_same_promotion(
    registry: Registry, tiny_models: tuple[Path, ...]
) -> None:
    registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-1"))
    production = registry.settings.production_name()
    # an approval that crashed after publishing: its copy is in the store, no promotion row names it
    registry.store.publish(production, "v1-p1", {"model": tiny_models[1]}, {"task": "test"}, {})

    promotion = registry.approve("v1", "ann")

    assert promotion.production_tag == f"{production}:v1-p1"
    assert [m.version for m in registry.store.versions(production)] == ["v1-p1"]
    served = registry.store.get(f"{production}:latest").path / "model" / "model.safetensors"
    assert served.read_bytes() == (tiny_models[0] / "model.safetensors").read_bytes()  # v1, not the crash's copy


def test_a_promotion_that_fails_to_commit_leaves_the_service_on_the_recorded_production(
    registry: Registry, tiny_models: tuple[Path, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-1"))
    registry.approve("v1", "ann")
    registry.submit(files(tiny_models[1]), evaluation({1: 0.8, 2: 0.9}), evaluation({1: 0.8, 2: 0.6}),
                    lineage_for("run-2"), "v1")  # fmt: skip
    production = registry.settings.production_name()
    served = registry.store.latest_version(production)

    def disk_full(version: str, stage: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry, "_set_stage", disk_full)
    with pytest.raises(OSError, match="disk full"):
        registry.approve("v2", "ann")
    monkeypatch.undo()

    assert registry.store.latest_version(production) == served, "the service still follows what was recorded"
    assert [model.version for model in registry.models("production")] == ["v1"]
    approved = registry.approve("v2", "ann")  # the retry reconciles the unrecorded copy away first
    assert registry.store.latest_version(production) == str(approved.production_tag).split(":")[1]

"""gc of the BentoML store: what is superseded is decided from the registry's tables; production, the rollback
target, pending models and what `latest` points at stay; a model whose files went says so when served again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry.errors import NotAllowed, StoreError
from registry.registry import Registry
from registry.served import write_served
from registry.settings import RegistrySettings
from tests.registry.conftest import evaluation, files, lineage_for

LATER = datetime.now(UTC) + timedelta(days=15)  # past registry.gc_rejected_after_days (14)


@pytest.fixture
def settings() -> RegistrySettings:
    return RegistrySettings(task="test", gate_bootstrap_samples=200, gc_keep_retired=0)


@pytest.fixture
def history(registry: Registry, tiny_models: tuple[Path, ...]) -> Registry:
    """v1, v2 retired (v2 the rollback target), v3 production, v4 rejected, v5 gate-failed, v6 pending."""
    r, (a, b, c) = registry, tiny_models
    r.submit(files(a), evaluation({1: 0.8}), None, lineage_for("run-1"))
    r.approve("v1", "ann")
    for version, model in (("v2", b), ("v3", c)):
        r.submit(files(model), evaluation({1: 0.8}), evaluation({1: 0.8}), lineage_for(f"run-{version}"), "v1")
        r.approve(version, "ann", "a test of gc, not of the gate", force=True)
    r.submit(files(a), evaluation({1: 0.8}), evaluation({1: 0.8}), lineage_for("run-4"), "v3")
    r.reject("v4", "ann", "not wanted")
    r.submit(files(b), evaluation({1: 0.5, 2: 0.95}), evaluation({1: 0.8, 2: 0.9}), lineage_for("run-5"), "v3")
    r.submit(files(c), evaluation({1: 0.8, 2: 0.9}), evaluation({1: 0.8, 2: 0.6}), lineage_for("run-6"), "v3")
    stages = [(m.version, m.stage) for m in r.models()]
    assert stages == [("v1", "retired"), ("v2", "retired"), ("v3", "production"), ("v4", "rejected"),
                      ("v5", "gate_failed"), ("v6", "pending")]  # fmt: skip
    assert r.rollback_target() == "v2"
    return r


def planned(registry: Registry, now: datetime | None = None) -> list[str]:
    return [item.target for item in registry.gc_plan(now)]


def stored(registry: Registry, name: str) -> list[str]:
    return [model.version for model in registry.store.versions(name)]


def test_gc_deletes_old_rejected_failed_and_retired_candidates_and_superseded_production_versions(
    history: Registry,
) -> None:
    candidates, production = history.settings.model_name(), history.settings.production_name()
    assert planned(history) == [f"{candidates}:v1", f"{production}:v1-p1", f"{production}:v2-p2"], (
        "today: only the retired model past gc_keep_retired and superseded production versions"
    )
    plan = history.gc_plan(LATER)
    assert [item.target for item in plan] == [f"{candidates}:v1", f"{candidates}:v4", f"{candidates}:v5",
                                              f"{production}:v1-p1", f"{production}:v2-p2"]  # fmt: skip
    assert all(item.bytes > 0 for item in plan)

    deleted, failed = history.gc(plan, "ann")

    assert (deleted, failed) == (plan, [])
    assert stored(history, candidates) == ["v2", "v3", "v6"], "the rollback target, production and pending stay"
    assert stored(history, production) == ["v3-p3"]
    assert history.store.latest_version(production) == "v3-p3"
    assert history.gc_plan(LATER) == []
    notes = [(p.action, p.actor, p.reason) for p in history.promotions("v4") if p.action == "gc"]
    assert notes == [("gc", "ann", f"deleted {candidates}:v4 ({plan[1].bytes} bytes): rejected and registered "
                                   "over 14 days ago (registry.gc_rejected_after_days)")]  # fmt: skip


def test_a_model_whose_files_gc_deleted_cannot_be_served_again_and_says_why(history: Registry) -> None:
    history.gc(history.gc_plan(LATER), "ann")

    with pytest.raises(NotAllowed, match=r"^v1 cannot be served again: `driftloop gc` deleted its files .* as it was "
                       r"retired, not among the 0 most recently served \(registry.gc_keep_retired\)$"):  # fmt: skip
        history.rollback("bob", to="v1")
    with pytest.raises(NotAllowed, match=r"^v5 cannot be served again: `driftloop gc` deleted its files"):
        history.approve("v5", "bob", "forced", force=True)
    promotion = history.rollback("bob")  # the rollback target kept its files
    assert promotion.to_version == "v2"
    production = history.settings.production_name()
    assert promotion.production_tag == f"{production}:{history.store.latest_version(production)}"


def test_more_retired_models_are_kept_with_a_larger_gc_keep_retired(history: Registry) -> None:
    keep_two = Registry(history.con, history.settings.model_copy(update={"gc_keep_retired": 2}), history.store.home)
    keep_one = Registry(history.con, history.settings.model_copy(update={"gc_keep_retired": 1}), history.store.home)
    production = history.settings.production_name()
    assert planned(keep_two) == []
    assert planned(keep_one) == [f"{history.settings.model_name()}:v1", f"{production}:v1-p1"]
    assert set(keep_one.kept_models()) == {"v2", "v3", "v5", "v6"}, "v5 failed the gate today: still approvable"


def test_the_version_the_service_last_served_is_kept(history: Registry) -> None:
    production = history.settings.production_name()
    write_served(history.store.home, production, "v1-p1", f"{history.settings.model_name()}:v1")
    assert f"{production}:v1-p1" not in planned(history)
    assert f"{production}:v2-p2" in planned(history)


def test_the_store_never_deletes_what_latest_points_at(registry: Registry, tiny_models: tuple[Path, ...]) -> None:
    store = registry.store
    store.publish("driftloop-x", "v1", {"model": tiny_models[0]}, {}, {})
    store.publish("driftloop-x", "v2", {"model": tiny_models[1]}, {}, {})

    with pytest.raises(StoreError, match="driftloop-x:v2 is what driftloop-x:latest points at"):
        store.delete("driftloop-x", "v2")
    assert store.delete("driftloop-x", "v1") > 0
    assert [model.version for model in store.versions("driftloop-x")] == ["v2"]
    with pytest.raises(StoreError, match="not in the BentoML store"):
        store.delete("driftloop-x", "v1")
    with pytest.raises(StoreError, match="not a version that can be deleted"):
        store.delete("driftloop-x", "../driftloop-x")
    assert not list(store.staging.glob("driftloop-x/.deleted-*")), "nothing is left half-deleted"

"""`driftloop models|show|approve|reject|rollback|lineage`: the operator's side of the registry."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import Any

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.operations import call

STAGES = ("pending", "gate_failed", "production", "retired", "rejected")
actor_option = click.option("--actor", default=getpass.getuser, show_default="the OS user", help="Who acts.")


@click.command("models")
@click.option("--stage", type=click.Choice(STAGES), help="Only models in this stage.")
@pass_state
def models(state: CliState, stage: str | None) -> None:
    """Registered models, oldest first, with their stage and newest-episode score."""
    found = call(state.settings, "models", stage=stage)
    if not found:
        click.echo("no models" + (f" in stage {stage}" if stage else ""))
    for model in found:
        passed = "passed" if model["gate_passed"] else "FAILED"
        click.echo(f"{model['version']:<8} {model['stage']:<12} gate {passed:<7} {_newest(model):<34} "
                   f"{_time(model['created_at']):%Y-%m-%d %H:%M}  {model['tag']}")  # fmt: skip


@click.command("show")
@click.argument("version")
@pass_state
def show(state: CliState, version: str) -> None:
    """One model: its stage, scores per episode, the gate's reasons and its promotions."""
    found = call(state.settings, "show", version=version)
    model = found["model"]
    click.echo(f"{model['version']}  {model['tag']}  stage {model['stage']}  parent {model['parent'] or '-'}")
    click.echo(f"created {_time(model['created_at']):%Y-%m-%d %H:%M:%S %Z}  evidence {model['evidence_hash'][:16]}")
    metrics = model["metrics"]
    click.echo(f"{metrics['metric']} per episode (newest {metrics['newest_episode']}):")
    for episode, value in metrics["candidate"].items():
        before = (metrics["production"] or {}).get(episode)
        versus = f"  production {before:.4f}" if before is not None else ""
        click.echo(f"  episode {episode:>3}: candidate {value:.4f}{versus}")
    click.echo(f"latency p99 {metrics['latency_ms_p99']:.1f} ms, peak memory {metrics['peak_memory_mb']:.0f} MiB")
    click.echo(f"gate {'PASSED' if model['gate_passed'] else 'FAILED'}:")
    for check in model["checks"]:
        click.echo(f"  [{'ok' if check['passed'] else 'no'}] {check['reason']}")
    for promotion in found["promotions"]:
        click.echo(f"  {_promotion_line(promotion)}")


@click.command("approve")
@click.argument("version")
@click.option("--reason", help="Why (required with --force).")
@click.option("--force", is_flag=True, help="Approve a model the gate failed (recorded).")
@actor_option
@pass_state
def approve(state: CliState, version: str, reason: str | None, force: bool, actor: str) -> None:
    """Promote VERSION to production: published as a new version of driftloop-<task>-production."""
    promotion = call(state.settings, "approve", version=version, actor=actor, reason=reason, force=force)
    click.echo(f"approved {version}: now serving as {promotion['production_tag']}" + (" (forced)" if force else ""))


@click.command("reject")
@click.argument("version")
@click.option("--reason", required=True, help="Why the model is rejected.")
@actor_option
@pass_state
def reject(state: CliState, version: str, reason: str, actor: str) -> None:
    """Reject a pending (or gate-failed) model; it can never be approved afterwards."""
    call(state.settings, "reject", version=version, actor=actor, reason=reason)
    click.echo(f"rejected {version}")


@click.command("rollback")
@click.option("--to", "to", metavar="VERSION", help="A model that served before (default: the previous one).")
@click.option("--reason", help="Why (recorded).")
@actor_option
@pass_state
def rollback(state: CliState, to: str | None, reason: str | None, actor: str) -> None:
    """Serve an earlier production model again (published as a new production version; history is kept)."""
    promotion = call(state.settings, "rollback", actor=actor, to=to, reason=reason)
    click.echo(f"rolled back {promotion['from_version']} -> {promotion['to_version']}: "
               f"serving {promotion['production_tag']}")  # fmt: skip


@click.command("lineage")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def lineage(state: CliState, version: str, as_json: bool) -> None:
    """Where VERSION comes from: Kafka offsets, data snapshot, drift event, run, report, approvals, BentoML tags."""
    found = call(state.settings, "lineage", version=version)
    if as_json:
        click.echo(json.dumps(found))
        return
    click.echo(f"{version}  ({found['bentoml_tag']})")
    for item in found["kafka_ranges"]:
        click.echo(f"  kafka     {item['topic']}[{item['partition']}] offsets {item['first_offset']}.."
                   f"{item['last_offset']} ({item['rows']} rows)")  # fmt: skip
    for part in ("snapshot", "drift_event", "training_run", "report"):
        value = found[part]
        click.echo(f"  {part.split('_')[-1]:<9} {json.dumps(value, sort_keys=True) if value else '-'}")
    for promotion in found["promotions"]:
        click.echo(f"  {_promotion_line(promotion)}")


def _newest(model: dict[str, Any]) -> str:
    metrics = model["metrics"]
    newest = str(metrics["newest_episode"])
    value = metrics["candidate"].get(newest)
    before = (metrics["production"] or {}).get(newest)
    versus = f" (prod {before:.3f})" if before is not None else ""
    return f"{metrics['metric']} {value:.3f}{versus}" if value is not None else "-"


def _promotion_line(promotion: dict[str, Any]) -> str:
    forced = " FORCED" if promotion["forced"] else ""
    change = f"{promotion['from_version'] or '-'} -> {promotion['to_version'] or '-'}"
    evidence = promotion["evidence_hash"][:12]
    return (f"#{promotion['id']} {_time(promotion['at']):%Y-%m-%d %H:%M:%S} {promotion['action']}{forced} "
            f"{promotion['version']} by {promotion['actor']} ({change}): {promotion['reason'] or '-'} "
            f"[evidence {evidence}]")  # fmt: skip


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


COMMANDS = [models, show, approve, reject, rollback, lineage]

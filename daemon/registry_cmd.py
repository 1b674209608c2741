"""`driftloop models|show|approve|reject|rollback|lineage|serve`: the operator's side of the registry."""

from __future__ import annotations

import getpass
import json
import os
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from daemon.cli import CliState, pass_state
from daemon.operations import bentoml_home, call

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


@click.command("serve")
@click.option("--host", help="Listen address (default: registry.host).")
@click.option("--port", type=int, help="Port (default: registry.port).")
@pass_state
def serve(state: CliState, host: str | None, port: int | None) -> None:
    """Run the BentoML service: /predict, /feedback, /healthz, /readyz, /metrics; hot-swaps new production models."""
    from registry.service_config import CONFIG_ENV, ServiceConfig, write_config

    settings = state.settings
    home = bentoml_home(settings)
    kafka = settings.kafka.model_dump(mode="json")
    if settings.kafka.sasl_password is not None:
        kafka["sasl_password"] = settings.kafka.sasl_password.get_secret_value()
    config = ServiceConfig(
        registry=settings.registry,
        bentoml_home=home.resolve(),
        feedback_sink="daemon.registry_cmd:kafka_feedback_sink",
        feedback_sink_config={"kafka": kafka, "ingest": settings.ingest.model_dump(mode="json")},
    )
    path = write_config(config, home / "service.json")
    path.chmod(0o600)  # it may hold the SASL password
    env = {**os.environ, "BENTOML_HOME": str(home.resolve()), CONFIG_ENV: str(path.resolve()),
           "BENTOML_DO_NOT_TRACK": "True", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    command = [sys.executable, "-m", "bentoml", "serve", "registry.service:DriftloopService",
               "--host", host or settings.registry.host, "--port", str(port or settings.registry.port)]  # fmt: skip
    sys.stdout.flush()
    os.execvpe(command[0], command, env)


def kafka_feedback_sink(config: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The service's /feedback sink: checks a record as the producer does and sends it (connects on first use)."""
    from ingest.errors import BadFeedback
    from ingest.kafka_clients import connect_once, feedback_producer
    from ingest.producer import send_one
    from ingest.settings import IngestSettings, KafkaSettings

    kafka = KafkaSettings.model_validate(config["kafka"])
    ingest = IngestSettings.model_validate(config["ingest"])
    producers: list[Any] = []
    lock = threading.Lock()

    def send(record: dict[str, Any]) -> None:
        with lock:
            if not producers:
                producers.append(connect_once(lambda: feedback_producer(kafka), kafka))
        try:
            send_one(producers[0], kafka, ingest, record)
        except BadFeedback as exc:
            raise ValueError(str(exc)) from None

    return send


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


COMMANDS = [models, show, approve, reject, rollback, lineage, serve]

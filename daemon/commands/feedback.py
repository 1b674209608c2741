"""`driftloop feedback ...`: send corrections, load files, and look at what the store holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from common.text_scores import corpus_score
from daemon.commands.state import CliState, pass_state
from daemon.commands.terminal import printable
from daemon.loop.operations import call
from daemon.serving import client as service_client
from daemon.serving.tokens import predict_token
from ingest.errors import BadFeedback
from ingest.kafka_clients import connect_once, feedback_producer
from ingest.producer import feedback_record, load_file, send_one
from ingest.records import KINDS

SKIPPED_SHOWN = 20
ANNOTATE_BATCH = 64


@click.group("feedback")
def feedback_group() -> None:
    """Send corrections to Kafka and inspect the feedback store."""


@feedback_group.command("send")
@click.option("--label", required=True, help="The correct label, as a person gave it.")
@click.option("--text", help="The text the model classified (left out: the prediction log's, by --prediction-id).")
@click.option("--prediction-id", help="The prediction_id /predict returned for the prediction this labels.")
@click.option("--kind", type=click.Choice(KINDS), help="What the label says about the prediction (default: told from "
              "the label against the prediction; `audit` for a random sample's label).")  # fmt: skip
@click.option("--id", "record_id", help="Idempotency key (default: prediction_id:kind, else one derived from the "
              "record, so a retry is one).")  # fmt: skip
@click.option("--prediction", help="What the served model predicted (by --prediction-id: taken from the log).")
@click.option("--model-version", help="Which model predicted it (by --prediction-id: taken from the log).")
@click.option("--meta", help="A JSON object kept with the record.")
@pass_state
def send(
    state: CliState,
    label: str,
    text: str | None,
    prediction_id: str | None,
    kind: str | None,
    record_id: str | None,
    prediction: str | None,
    model_version: str | None,
    meta: str | None,
) -> None:
    """Send one label to the feedback topic: for a text, or for a served prediction by its id."""
    settings = state.settings
    record = feedback_record(label, text, prediction_id, kind, record_id, prediction, model_version,
                             None if meta is None else _json_object(meta))  # fmt: skip
    producer = connect_once(lambda: feedback_producer(settings.kafka), settings.kafka)
    try:
        key = send_one(producer, settings.kafka, settings.ingest, record)
    finally:
        producer.close()
    click.echo(f"sent {key} to {settings.kafka.topic}")


def _json_object(text: str) -> object:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFeedback(f'--meta is not JSON ({exc.msg}); pass an object such as \'{{"source": "app"}}\'') from None
    if not isinstance(value, dict):
        raise BadFeedback('--meta must be a JSON object such as \'{"source": "app"}\'')
    return value


@feedback_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-check", is_flag=True, help="Send lines verbatim, bad ones included (the consumer rejects them).")
@pass_state
def load(state: CliState, file: Path, no_check: bool) -> None:
    """Send every line of a JSON-lines FILE; bad lines are reported with their number and skipped."""
    settings = state.settings
    with open(file, "rb") as lines:
        total = sum(1 for line in lines if line.strip())
    producer = connect_once(lambda: feedback_producer(settings.kafka), settings.kafka)
    try:
        with click.progressbar(length=total, label=f"sending {file.name}", file=sys.stderr) as bar:
            report = load_file(
                producer, settings.kafka, settings.ingest, file, check=not no_check, on_progress=bar.update
            )
    finally:
        producer.close()
    for line, reason in report.skipped[:SKIPPED_SHOWN]:
        click.echo(f"{file}:{line}: not sent: {reason}", err=True)
    if len(report.skipped) > SKIPPED_SHOWN:
        click.echo(f"... and {len(report.skipped) - SKIPPED_SHOWN} more bad lines", err=True)
    click.echo(f"sent {report.sent} records to {settings.kafka.topic}; skipped {len(report.skipped)} bad lines")


@feedback_group.command("annotate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--service", default="http://127.0.0.1:3000", show_default=True, help="URL of `driftloop serve`.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the records with predictions.")
@pass_state
def annotate(state: CliState, file: Path, service: str, out: Path | None) -> None:
    """Ask the service to predict every record of FILE (a generative model: to answer its prompt): prints its
    accuracy on them (chrF and BLEU-4 of the answers against the records' labels); with --out writes the records
    with `prediction` and `model_version` set, as corrections of the served model. An evaluation, not served
    traffic: the service leaves it out of its prediction log. Sends registry.predict_token when it is set."""
    token = predict_token(state.settings.registry)
    records = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    generation = state.settings.trainer.task_kind == "generation"
    sources = set()
    for start in range(0, len(records), ANNOTATE_BATCH):
        batch = records[start : start + ANNOTATE_BATCH]
        texts = [record["text"] for record in batch]
        if generation:
            answer = service_client.request_answers(service, texts, token, log=False)
            said = [item["text"] for item in answer["answers"]]
        else:
            answer = service_client.request_predictions(service, texts, token, log=False)
            said = [item["label"] for item in answer["predictions"]]
        sources.add(answer["source"])
        for record, prediction in zip(batch, said, strict=True):
            record["prediction"], record["model_version"] = prediction, answer["model_version"]
    if out is not None:
        out.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    served = ", ".join(sorted(sources))
    labels, predicted = [record["label"] for record in records], [record["prediction"] for record in records]
    if generation:
        chrf, bleu = corpus_score("chrf", predicted, labels), corpus_score("bleu", predicted, labels)
        click.echo(f"chrF of {served} on {file.name}: {chrf:.2f}, BLEU-4 {bleu:.2f} ({len(records)} records)")
    else:
        right = sum(label == guess for label, guess in zip(labels, predicted, strict=True))
        click.echo(f"accuracy of {served} on {file.name}: {right / max(len(records), 1):.4f} ({len(records)} records)")


@feedback_group.command("stats")
@pass_state
def stats(state: CliState) -> None:
    """Counts of stored and rejected records, of stored records per label and per kind, and of the prediction log."""
    summary = call(state.settings, "feedback_stats")
    click.echo(f"stored {summary['rows']} ({summary['holdout_rows']} holdout), rejected {summary['rejected']}")
    shown = len(summary["labels"])
    more = f"; the {shown} most common" if summary["distinct_labels"] > shown else ""
    click.echo(f"labels: {summary['distinct_labels']}{more}")
    for label, count in summary["labels"].items():
        click.echo(f"  {printable(label)[:60]:<24} {count}")  # an answer can run to 2,000 characters
    click.echo("kinds: " + (", ".join(f"{kind} {count}" for kind, count in summary["kinds"].items()) or "none"))
    log = summary["prediction_log"]
    click.echo(f"prediction log: {log['predictions']} predictions ({log['with_text']} with their text), "
               f"{log['waiting_feedback']} feedback waiting for its prediction")  # fmt: skip


@feedback_group.command("rejected")
@click.option("--limit", default=20, show_default=True, help="How many of the newest rejections to show.")
@pass_state
def rejected(state: CliState, limit: int) -> None:
    """The newest rejected records: where they were in Kafka and why they were rejected."""
    for item in call(state.settings, "rejections", limit=limit):
        where = f"{printable(item['topic'])}[{item['partition']}]@{item['offset']}"
        click.echo(f"{where}: {printable(item['reason'])}  raw={item['raw_preview']!r}")


COMMANDS = [feedback_group]

"""`driftloop audit export`: the audit sample of served traffic, written for a reviewer to label."""

from __future__ import annotations

import json
from pathlib import Path

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.operations import call


@click.group("audit")
def audit_group() -> None:
    """The random sample of served predictions a reviewer labels (audit.sample_rate)."""


@audit_group.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSON-lines file to write.")
@click.option("--limit", default=500, show_default=True, help="Most predictions to write, newest first.")
@pass_state
def export(state: CliState, out: Path, limit: int) -> None:
    """Write the sampled predictions that have no audit label yet, one feedback record per line with `label` null:
    fill in each label and send the file with `driftloop feedback load` (lines left null are skipped)."""
    records = call(state.settings, "audit_export", limit=limit)
    out.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    click.echo(
        f"wrote {len(records)} predictions to label to {out} (audit.sample_rate {state.settings.audit.sample_rate})"
    )


COMMANDS = [audit_group]

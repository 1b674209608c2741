"""`driftloop gc`: delete what retention lets go of (old run folders, rejected, gate-failed and long-retired
candidates, superseded production versions); through the running daemon when there is one."""

from __future__ import annotations

import json

import click

from daemon.commands.registry import actor_option
from daemon.commands.state import CliState, pass_state
from daemon.errors import DaemonError
from daemon.loop.operations import call


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, and delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@actor_option
@pass_state
def gc(state: CliState, dry_run: bool, as_json: bool, actor: str) -> None:
    """Delete old run folders and BentoML store versions retention lets go of; never production, the rollback
    target, pending models or the stored feedback. One line per item with its size, then the total."""
    result = call(state.settings, "gc", dry_run=dry_run, actor=actor)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        verb = "would delete" if dry_run else "deleted"
        for item in result["deleted"]:
            click.echo(f"{verb} {item['kind']} {item['target']} ({size(item['bytes'])}): {item['reason']}")
        click.echo(f"{verb} {len(result['deleted'])} items, {size(result['total_bytes'])} in all")
    for failure in result["failed"]:
        click.echo(f"could not delete {failure}", err=True)
    if result["failed"]:
        raise DaemonError(f"gc could not delete {len(result['failed'])} items (listed above); the rest was deleted")


def size(count: int) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


COMMANDS = [gc]

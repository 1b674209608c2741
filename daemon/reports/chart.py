"""A PNG of the stored stream: the served model's rolling accuracy, drift signals against their thresholds,
drift events and promotions, all along the feedback row ids.

Signal values are not stored (the monitor keeps only its latest check), so they come from replaying the
stored rows through a fresh monitor, one check at a time, as `driftloop drift backtest` does: about 0.3 s
per 20k rows, kept out of the log. The replay knows nothing of rebaselines the daemon did, so after one its
values may differ from what the daemon saw; the drift events drawn are the stored ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from daemon.errors import DaemonError
from daemon.loop.access import StoreAccess
from daemon.loop.runs import bootstrap_end
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows, FloatArray, IntArray
from drift.settings import DriftSettings
from drift.signals import NAMES
from drift.store import stored_events
from ingest import history
from ingest.history import Span
from registry.records import Promotion, select_promotions

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

_replaying: ContextVar[bool] = ContextVar("driftloop_chart_replaying", default=False)
RATIO_CLIP = 4.0  # the signal panel's limit: a crossing of 1.0 is what matters, not how far beyond it goes


@dataclass(frozen=True)
class ChartData:
    """What the chart draws, computed from the store alone."""

    rows: int  # feedback rows in the store
    window: int
    row_id: IntArray  # the rows that carry a served prediction
    accuracy: FloatArray  # at each of them, prediction = label over the last `window` of them (NaN while thin)
    versions: tuple[Span, ...]  # runs of predicted rows served by one model_version ("unknown" when missing)
    drift_events: tuple[Span, ...]  # stored events: their window first_row_id..row_id, labelled with the signals
    promotions: tuple[Span, ...]  # production changes at the row ingested closest to them (first == last)
    signal_row_id: IntArray  # the last row of each replayed check
    signals: Mapping[str, FloatArray]  # value / threshold in the signal's alarm direction; 1.0 is the threshold


def chart_data(
    con: duckdb.DuckDBPyConnection,
    promotions: Sequence[Promotion] = (),
    window: int = 500,
    drift: DriftSettings | None = None,
) -> ChartData:
    """Read the series from the store; `promotions` are the registry's log. Raises DaemonError with no rows."""
    if window < 1:
        raise DaemonError(f"the chart window must be at least 1 row, got {window}")
    stored = history.store_rows(con)
    if not stored:
        raise DaemonError(
            "the store has no feedback rows to chart; ingest some first (`driftloop ingest --once`) "
            "or point --home at the store that has them"
        )
    row_id, accuracy = _accuracy(history.served_outcomes(con), window)
    changes = _production_changes(con, promotions)
    signal_row_id, signals = _replay(con, drift or DriftSettings(), [span.first_row_id for span in changes])
    events = sorted(stored_events(con), key=lambda event: event.row_id)
    return ChartData(
        rows=stored,
        window=window,
        row_id=row_id,
        accuracy=accuracy,
        versions=tuple(history.model_version_spans(con)),
        drift_events=tuple(Span(e.first_row_id, e.row_id, ", ".join(e.signals)) for e in events),
        promotions=changes,
        signal_row_id=signal_row_id,
        signals=signals,
    )


def write_chart(access: StoreAccess, path: Path, window: int = 500) -> Path:
    """Draw the chart of the store's rows into a PNG at `path` and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = access.settings
    data = chart_data(access.con, select_promotions(access.con, settings.registry.task), window, settings.drift)
    figure = Figure(figsize=(13, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    counts = [(data.rows, "feedback row"), (len(data.drift_events), "drift event"), (len(data.promotions), "promotion")]
    figure.suptitle(", ".join(f"{count:,} {noun}{'' if count == 1 else 's'}" for count, noun in counts))
    _draw_accuracy(top, data)
    _draw_signals(bottom, data)
    for axes in (top, bottom):
        _draw_markers(axes, data, labelled=axes is top)
    bottom.set_xlabel("feedback row id")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    log.info("chart of %d rows written to %s", data.rows, path)
    return path


def _production_changes(con: duckdb.DuckDBPyConnection, promotions: Sequence[Promotion]) -> tuple[Span, ...]:
    """Production changes (approvals and rollbacks move to_version, a rejection leaves it), each at the row
    ingested closest to it."""
    changes = [p for p in promotions if p.to_version != p.from_version]
    rows = history.rows_ingested_nearest(con, [p.at for p in changes])
    return tuple(
        Span(row, row, f"{p.action} {p.version}") for p, row in zip(changes, rows, strict=True) if row is not None
    )


def _accuracy(served: history.ServedOutcomes, window: int) -> tuple[IntArray, FloatArray]:
    row_id = served.row_id
    correct = np.concatenate([[0], np.cumsum(served.correct.astype(np.int64))])
    end = np.arange(1, len(row_id) + 1)
    start = np.maximum(end - window, 0)
    accuracy = (correct[end] - correct[start]) / (end - start)
    accuracy[end < max(window // 5, 1)] = np.nan  # a partial window counts once it holds a fifth of the rows
    return row_id, accuracy


def _replay(
    con: duckdb.DuckDBPyConnection, settings: DriftSettings, promoted_at: list[int]
) -> tuple[IntArray, dict[str, FloatArray]]:
    """Every signal at every check of a fresh monitor fed the stored rows one check's worth at a time, as the
    daemon's monitor was: starting after the bootstrap set (whose approval, the first promotion, starts it),
    starting over at every later promotion."""
    rows = FeedbackRows.from_arrow(history.read_rows(con))
    monitor = DriftMonitor(settings)
    start = bootstrap_end(con)
    logging.getLogger("drift.monitor").addFilter(_not_replayed)  # once: addFilter skips a filter it holds
    token = _replaying.set(True)
    try:
        if start is not None:
            monitor.start_after(start)
        return _checks(monitor, rows, promoted_at if start is None else promoted_at[1:])
    finally:
        _replaying.reset(token)


def _not_replayed(record: logging.LogRecord) -> bool:
    """The replayed monitor's events and phases are not the daemon's: keep them out of its log."""
    return not _replaying.get()


def _checks(
    monitor: DriftMonitor, rows: FeedbackRows, rebaseline_at: list[int]
) -> tuple[IntArray, dict[str, FloatArray]]:
    step = monitor.settings.check_every_rows
    ends: list[int] = []
    ratios: list[list[float]] = []
    pending = sorted(rebaseline_at)
    for start in range(0, len(rows), step):
        part = rows.slice(start, start + step)
        while pending and pending[0] < part.row_id[0]:
            monitor.rebaseline(cooldown=True)
            pending.pop(0)
        monitor.update(part)
        ends.append(int(part.row_id[-1]))
        ratios.append([_ratio(r.value, r.threshold, r.direction) for r in monitor.status().readings])
    table = np.array(ratios, dtype=np.float64).reshape(len(ratios), len(NAMES))
    signals = {name: table[:, column] for column, name in enumerate(NAMES) if np.isfinite(table[:, column]).any()}
    return np.array(ends, dtype=np.int64), signals


def _ratio(value: float | None, threshold: float, direction: str) -> float:
    if value is None:
        return float("nan")
    oriented = {"up": value, "down": -value, "both": abs(value)}[direction]
    return oriented / threshold


def _draw_accuracy(axes: Axes, data: ChartData) -> None:
    colours: dict[str, str] = {}
    for index, span in enumerate(data.versions):
        new = span.label not in colours
        colour = colours.setdefault(span.label, f"C{len(colours) % 10}")
        following = data.versions[index + 1].first_row_id if index + 1 < len(data.versions) else span.last_row_id
        axes.axvspan(span.first_row_id, following, color=colour, alpha=0.08, linewidth=0)
        inside = (data.row_id >= span.first_row_id) & (data.row_id <= span.last_row_id)
        label = f"model {span.label}" if new else None
        axes.plot(data.row_id[inside], data.accuracy[inside], color=colour, linewidth=1.3, label=label)
    if not len(data.row_id):
        _note(axes, "no row carries a served prediction")
    axes.set_ylim(0.0, 1.02)
    axes.set_ylabel(f"accuracy (last {data.window} predicted rows)")
    axes.grid(alpha=0.3)
    if data.versions:
        axes.legend(loc="lower left", fontsize=8)


def _draw_signals(axes: Axes, data: ChartData) -> None:
    highest = max((float(np.nanmax(ratio)) for ratio in data.signals.values()), default=1.0)
    lowest = min((float(np.nanmin(ratio)) for ratio in data.signals.values()), default=0.0)
    for name, ratio in data.signals.items():
        axes.plot(data.signal_row_id, np.clip(ratio, -RATIO_CLIP, RATIO_CLIP), linewidth=1, label=name)
    axes.axhline(1.0, color="black", linestyle="--", linewidth=1)
    axes.set_ylim(max(min(lowest, 0.0), -RATIO_CLIP) - 0.2, min(max(highest, 1.0), RATIO_CLIP) + 0.3)
    cut = f", cut at ±{RATIO_CLIP:g}" if max(highest, -lowest) > RATIO_CLIP else ""
    axes.set_ylabel(f"signal / threshold (replayed{cut})")
    axes.grid(alpha=0.3)
    if data.signals:
        axes.legend(loc="upper left", fontsize=8, ncols=len(data.signals))
    else:
        _note(axes, "no signal values: too few rows for the monitor's warm-up and window")


def _note(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", color="grey")


def _draw_markers(axes: Axes, data: ChartData, labelled: bool) -> None:
    for event in data.drift_events:
        axes.axvspan(event.first_row_id, event.last_row_id, color="red", alpha=0.15, linewidth=0)
        _mark(axes, event.last_row_id, f"drift: {event.label}" if labelled else "", "red", at_top=True)
    for promotion in data.promotions:
        _mark(axes, promotion.last_row_id, promotion.label if labelled else "", "green", at_top=False)


def _mark(axes: Axes, row_id: int, text: str, colour: str, at_top: bool) -> None:
    """A vertical line at the row, with the text along it at the top (left of it) or the bottom (right of it)."""
    axes.axvline(row_id, color=colour, linestyle="-" if at_top else "--", linewidth=1.2)
    if text:
        y, va, ha = (0.98, "top", "right") if at_top else (0.02, "bottom", "left")
        axes.text(row_id, y, f" {text} ", transform=axes.get_xaxis_transform(), rotation=90, va=va, ha=ha,
                  fontsize=8, color=colour)  # fmt: skip

"""The drift monitor: warm-up → monitoring → (event) → cooldown → warm-up, over batches of rows.

Signals are checked once per chunk of `check_every_rows` rows. A signal confirms a shift when it was
beyond its threshold now and in `confirm_n` of the last `confirm_m` checks and, for a signal a river detector
watches, that detector has fired and the signal has not gone quiet since (quiet: no alarm for a whole
window and not beyond its threshold in any of the last `confirm_m` checks).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field

import numpy as np

from drift.chunks import NUMERIC, Chunks, concat, merge_into_first, summarise, window_totals
from drift.detectors import Detector, detector_inputs, feed, make_detectors, river_drift
from drift.errors import DriftStateError
from drift.events import DriftEvent, DriftStatus, SignalReading, finite_or_none
from drift.features import RowFeatures, compute_features, unseen_counts
from drift.reference import Moments, Reference
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.signals import NAMES, SIGNALS, BoolArray, exceeded, reference_values, signal_values, thresholds

log = logging.getLogger(__name__)

STATE_VERSION = 2  # 1: before the `edit` signal; upgraded on load
NEVER = 1 << 40
WATCHED = np.array([spec.watched_by_detector for spec in SIGNALS])


@dataclass
class MonitorState:
    """Everything a restart needs; pickled whole into `detector_state`."""

    ngram_buckets: int
    confirm_m: int
    phase: str = "warmup"
    phase_rows_left: int = 0
    rows_seen: int = 0
    last_row_id: int | None = None
    events: int = 0
    last_event_row_id: int | None = None
    label_codes: dict[str, int] = field(default_factory=dict)
    reference: Reference = field(init=False)
    detectors: dict[str, Detector] = field(default_factory=dict)
    window: Chunks = field(init=False)
    pending: Chunks = field(init=False)
    recent: BoolArray = field(init=False)  # (confirm_m, signals): beyond threshold at the last checks
    latched: BoolArray = field(init=False)  # the signal's detector fired and the signal has not gone quiet since
    alarm_age: np.ndarray = field(init=False)  # checks since each detector last fired
    values: np.ndarray = field(init=False)  # signal values at the last check
    version: int = STATE_VERSION

    def __post_init__(self) -> None:
        self.reference = Reference(self.ngram_buckets)
        self.clear_window()

    def clear_window(self) -> None:
        self.window = Chunks.empty(self.ngram_buckets)
        self.pending = Chunks.empty(self.ngram_buckets)
        self.recent = np.zeros((self.confirm_m, len(SIGNALS)), dtype=np.bool_)
        self.latched = np.zeros(len(SIGNALS), dtype=np.bool_)
        self.alarm_age = np.full(len(SIGNALS), NEVER, dtype=np.int64)
        self.values = np.full(len(SIGNALS), np.nan)


class DriftMonitor:
    """Feed it rows in row_id order with `update`; it returns the drift events those rows confirmed."""

    def __init__(self, settings: DriftSettings, state: MonitorState | None = None) -> None:
        self.settings = settings
        self.limits = thresholds(settings)
        if state is None:
            state = MonitorState(settings.ngram_buckets, settings.confirm_m, phase_rows_left=settings.warmup_rows)
        self.state = state

    @property
    def last_row_id(self) -> int | None:
        return self.state.last_row_id

    def update(self, rows: FeedbackRows) -> list[DriftEvent]:
        if self.state.last_row_id is not None and len(rows) and rows.row_id[0] <= self.state.last_row_id:
            skip = int(np.searchsorted(rows.row_id, self.state.last_row_id, side="right"))
            log.debug("skipping %d rows already seen (up to row %d)", skip, self.state.last_row_id)
            rows = rows.slice(skip, len(rows))
        if not len(rows):
            return []
        answers = self.settings.output == "answers"
        features = compute_features(rows, self.state.label_codes, self.settings.ngram_buckets, answers)
        events: list[DriftEvent] = []
        position = 0
        while position < len(rows):
            if self.state.phase == "monitoring":
                consumed, event = self._monitor(features, rows, position)
                if event is not None:
                    events.append(event)
                    self._after_event(event)
            else:
                consumed = min(self.state.phase_rows_left, len(rows) - position)
                if self.state.phase == "warmup":
                    self.state.reference.add(features, rows.row_id, position, position + consumed)
                self.state.phase_rows_left -= consumed
                if self.state.phase_rows_left == 0:
                    self._next_phase(after_row=int(rows.row_id[position + consumed - 1]))
            position += consumed
        self.state.rows_seen += len(rows)
        self.state.last_row_id = int(rows.row_id[-1])
        return events

    def rebaseline(self, cooldown: bool = True, after_row: int | None = None) -> None:
        """Start over (e.g. after a new model went to production): optional cooldown, then a fresh warm-up, from
        the row after `after_row` (default: after the last row seen)."""
        phase = "cooldown" if cooldown and self.settings.cooldown_rows else "warmup"
        self._enter(phase, self.state.last_row_id if after_row is None else after_row)

    def start_after(self, row_id: int) -> None:
        """Skip every row up to `row_id` and warm up on the rows after it (e.g. the first model's training set is
        stored, but the reference must be the live traffic the model serves)."""
        self.state.last_row_id = row_id
        self._enter("warmup", row_id)

    def status(self) -> DriftStatus:
        state = self.state
        reference = state.reference
        span = None
        if reference.first_row_id is not None and reference.last_row_id is not None:
            span = (reference.first_row_id, reference.last_row_id)
        return DriftStatus(
            phase=state.phase,
            rows_seen=state.rows_seen,
            last_row_id=state.last_row_id,
            rows_left_in_phase=None if state.phase == "monitoring" else state.phase_rows_left,
            reference_rows=span,
            events=state.events,
            last_event_row_id=state.last_event_row_id,
            readings=self._readings(state.values, state.latched),
        )

    def state_bytes(self) -> bytes:
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_state_bytes(cls, settings: DriftSettings, blob: bytes) -> DriftMonitor:
        try:
            state = pickle.loads(blob)  # noqa: S301 - our own table, written by state_bytes
        except Exception as exc:
            raise DriftStateError(f"the stored drift state cannot be read ({exc}); delete it to start over") from None
        if not isinstance(state, MonitorState) or state.version not in (1, STATE_VERSION):
            raise DriftStateError("the stored drift state has another format; delete it to start over")
        if state.version == 1:
            _add_edit_signal(state, settings)
        return cls(settings, state)

    def _next_phase(self, after_row: int) -> None:
        if self.state.phase == "cooldown":
            self._enter("warmup", after_row)
        else:
            self.state.reference.freeze()
            self._enter("monitoring", after_row)

    def _enter(self, phase: str, after_row: int | None) -> None:
        """Start `phase` with the row after `after_row` (None: with the stream's first row)."""
        state = self.state
        state.phase = phase
        state.clear_window()
        if phase == "warmup":
            state.reference = Reference(self.settings.ngram_buckets)
            state.phase_rows_left = self.settings.warmup_rows
        elif phase == "cooldown":
            state.phase_rows_left = self.settings.cooldown_rows
        else:
            state.phase_rows_left = 0
            state.detectors = make_detectors(self.settings)
        log.info("drift monitor: %s %s", phase, "from the first row" if after_row is None else f"after row {after_row}")

    def _after_event(self, event: DriftEvent) -> None:
        self.state.events += 1
        self.state.last_event_row_id = event.row_id
        log.warning("%s", event.describe())
        self.rebaseline(cooldown=True, after_row=event.row_id)

    def _monitor(self, features: RowFeatures, rows: FeedbackRows, start: int) -> tuple[int, DriftEvent | None]:
        """Process rows[start:] until an event; returns the rows consumed and the event, if any."""
        state, settings = self.state, self.settings
        stop, chunk_rows = len(rows), settings.check_every_rows
        assert state.reference.vocabulary is not None
        unseen = unseen_counts(features, start, stop, state.reference.vocabulary)
        held = int(state.pending.rows[0]) if len(state.pending) else 0
        block, chunk_of_row = summarise(features, rows.row_id, unseen, start, stop, held, chunk_rows)
        block = merge_into_first(state.pending, block)
        alarms = self._feed_detectors(features, unseen, start, stop, chunk_of_row, len(block))
        complete = int(np.count_nonzero(block.rows == chunk_rows))
        history = concat(state.window, block.take(0, complete))
        window_chunks = settings.window_rows // chunk_rows
        totals, spans = window_totals(history, window_chunks)
        fresh = slice(len(state.window), len(history))
        values = signal_values(totals.take(fresh.start), spans[fresh], state.reference, settings)
        beyond = exceeded(values, self.limits)
        for check in range(complete):
            state.recent = np.vstack([state.recent[1:], beyond[check]])
            state.alarm_age = np.where(alarms[check], 0, np.minimum(state.alarm_age + 1, NEVER))
            quiet = ~state.recent.any(axis=0) & (state.alarm_age >= window_chunks)
            state.latched = (state.latched | alarms[check]) & ~quiet
            state.values = values[check]
            often = state.recent.sum(axis=0) >= settings.confirm_n
            confirmed = beyond[check] & often & (state.latched | ~WATCHED)
            if confirmed.any():
                event = self._event(totals.take(fresh.start), check, confirmed)
                return (check + 1) * chunk_rows - held, event
        state.window = history.take(max(len(history) - settings.window_rows // chunk_rows, 0))
        state.pending = block.take(complete)
        return stop - start, None

    def _feed_detectors(
        self,
        features: RowFeatures,
        unseen: tuple[np.ndarray, np.ndarray],
        start: int,
        stop: int,
        chunk_of_row: np.ndarray,
        chunks: int,
    ) -> BoolArray:
        standardised = {
            "length": features.log_length[start:stop],
            "confidence": features.confidence[start:stop],
            "distance": features.distance[start:stop],
        }
        shares = {"error": features.error[start:stop], "edit": features.edit[start:stop]}
        inputs = detector_inputs(shares, unseen, standardised, self.state.reference)
        alarms = np.zeros((chunks, len(SIGNALS)), dtype=np.bool_)
        for name, detector in self.state.detectors.items():
            fired = feed(detector, inputs[name])
            alarms[chunk_of_row[fired], NAMES.index(name)] = True
        return alarms

    def _event(self, totals: Chunks, check: int, confirmed: BoolArray) -> DriftEvent:
        reference = self.state.reference
        assert reference.first_row_id is not None
        assert reference.last_row_id is not None
        return DriftEvent(
            row_id=int(totals.last_row_id[check]),
            first_row_id=int(totals.first_row_id[check]),
            reference_first_row_id=reference.first_row_id,
            reference_last_row_id=reference.last_row_id,
            signals=tuple(name for name, flag in zip(NAMES, confirmed, strict=True) if flag),
            readings=self._readings(self.state.values, self.state.latched),
        )

    def _readings(self, values: np.ndarray, latched: BoolArray) -> tuple[SignalReading, ...]:
        counts = self.state.recent.sum(axis=0)
        references = reference_values(self.state.reference)
        return tuple(
            SignalReading(
                name=spec.name,
                value=finite_or_none(float(values[column])),
                threshold=float(self.limits[column]),
                direction=spec.direction,
                reference=finite_or_none(float(references[column])),
                exceeded_checks=int(counts[column]),
                detector_alarm=bool(latched[column]) if spec.watched_by_detector else None,
            )
            for column, spec in enumerate(SIGNALS)
        )


def _add_edit_signal(state: MonitorState, settings: DriftSettings) -> None:
    """Upgrade a version 1 state: the `edit` signal gets empty sums, moments and a fresh detector (it is judged
    from the next reference on; with drift.output=labels it is never fed anyway)."""
    column, signal = NUMERIC.index("edit"), NAMES.index("edit")
    state.window = state.window.with_numeric_column(column)
    state.pending = state.pending.with_numeric_column(column)
    state.recent = np.insert(state.recent, signal, False, axis=1)
    state.latched = np.insert(state.latched, signal, False)
    state.alarm_age = np.insert(state.alarm_age, signal, NEVER)
    state.values = np.insert(state.values, signal, np.nan)
    state.reference.moments.setdefault("edit", Moments())
    if state.detectors:
        state.detectors.setdefault("edit", river_drift.ADWIN(delta=settings.adwin_delta))
    state.version = STATE_VERSION

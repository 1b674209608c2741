"""The monitor's input: a batch of feedback rows as Arrow/numpy columns, in row_id order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.errors import DriftInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
USER_CHOSEN = ("correction", "confirmation")  # feedback kinds that users chose to send: biased for the error rate


@dataclass(frozen=True)
class FeedbackRows:
    """Rows of the `feedback` table plus optional per-row model numbers (NaN where unknown).

    `prediction` may hold nulls (no served prediction: the row does not count for the error stream).
    """

    row_id: IntArray
    text: pa.Array
    label: pa.Array
    prediction: pa.Array
    confidence: FloatArray | None = None
    distance: FloatArray | None = None

    def __post_init__(self) -> None:
        n = len(self.row_id)
        for name in ("text", "label", "prediction", "confidence", "distance"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise DriftInputError(f"column {name} has {len(column)} values for {n} row ids; pass equal lengths")
        for name in ("text", "label", "prediction"):
            if not pa.types.is_string(getattr(self, name).type) and not pa.types.is_large_string(
                getattr(self, name).type
            ):
                raise DriftInputError(f"column {name} must be strings, got {getattr(self, name).type}")
        if self.text.null_count or self.label.null_count:
            raise DriftInputError("text and label may not be null; the feedback table never stores null ones")
        if n > 1 and not bool(np.all(np.diff(self.row_id) > 0)):
            raise DriftInputError("row ids must increase strictly within a batch; read rows ORDER BY row_id")

    def __len__(self) -> int:
        return len(self.row_id)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> FeedbackRows:
        """From a table with columns row_id, text, label, prediction and optionally confidence, distance, kind.

        Rows of kind `correction` or `confirmation` were chosen by users, so their errors say nothing about the
        error rate: their prediction is dropped (they count for the input signals and the label mix only).
        """
        missing = {"row_id", "text", "label"} - set(table.column_names)
        if missing:
            raise DriftInputError(f"the rows lack the columns {sorted(missing)}; select them from `feedback`")
        n = table.num_rows
        prediction = pa.nulls(n, pa.string())
        if "prediction" in table.column_names:
            prediction = table.column("prediction").combine_chunks()
        if "kind" in table.column_names:
            chosen = pc.is_in(table.column("kind").combine_chunks(), pa.array(USER_CHOSEN, pa.string()))
            prediction = pc.if_else(chosen, pa.scalar(None, prediction.type), prediction)
        return cls(
            row_id=np.asarray(table.column("row_id").to_numpy(), dtype=np.int64),
            text=table.column("text").combine_chunks(),
            label=table.column("label").combine_chunks(),
            prediction=prediction,
            confidence=_optional_floats(table, "confidence"),
            distance=_optional_floats(table, "distance"),
        )

    @classmethod
    def from_lists(
        cls,
        row_id: Sequence[int] | IntArray,
        text: Sequence[str],
        label: Sequence[str],
        prediction: Sequence[str | None] | None = None,
        confidence: Sequence[float] | FloatArray | None = None,
        distance: Sequence[float] | FloatArray | None = None,
    ) -> FeedbackRows:
        n = len(row_id)
        return cls(
            row_id=np.asarray(row_id, dtype=np.int64),
            text=pa.array(text, pa.string()),
            label=pa.array(label, pa.string()),
            prediction=pa.array(prediction, pa.string()) if prediction is not None else pa.nulls(n, pa.string()),
            confidence=None if confidence is None else np.asarray(confidence, dtype=np.float64),
            distance=None if distance is None else np.asarray(distance, dtype=np.float64),
        )

    def slice(self, start: int, stop: int) -> FeedbackRows:
        return FeedbackRows(
            row_id=self.row_id[start:stop],
            text=self.text[start:stop],
            label=self.label[start:stop],
            prediction=self.prediction[start:stop],
            confidence=None if self.confidence is None else self.confidence[start:stop],
            distance=None if self.distance is None else self.distance[start:stop],
        )


def _optional_floats(table: pa.Table, name: str) -> FloatArray | None:
    if name not in table.column_names:
        return None
    column = table.column(name).combine_chunks().cast(pa.float64()).fill_null(float("nan"))
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)

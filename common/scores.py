"""Accuracy and macro-F1 of predicted labels: the one implementation the trainer's reports and the gate share,
vectorised so the gate's bootstrap scores thousands of resamples at once; and the gate's view of BLEU and chrF of
generated answers (common.text_scores), on the same 0-1 scale as the label scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from typing_extensions import TypeIs

from common.text_scores import TextMetric, corpus_score

LabelMetric = Literal["macro_f1", "accuracy"]
Metric = LabelMetric | TextMetric
TEXT_METRICS: tuple[TextMetric, ...] = ("bleu", "chrf")
IntArray = NDArray[np.int64]


def encode_labels(*columns: Sequence[str]) -> tuple[list[str], list[IntArray]]:
    """Map labels to integers over the union of all columns."""
    classes = sorted(set().union(*(set(column) for column in columns)))
    index = {label: i for i, label in enumerate(classes)}
    return classes, [np.array([index[label] for label in column], dtype=np.int64) for column in columns]


def is_text_metric(metric: Metric) -> TypeIs[TextMetric]:
    """Whether `metric` scores generated text (against reference answers) rather than labels."""
    return metric in TEXT_METRICS


def batched_metric(true: IntArray, predicted: IntArray, classes: int, metric: LabelMetric) -> NDArray[np.float64]:
    """The score of every row of `true`/`predicted` (shape: samples x rows)."""
    if metric == "accuracy":
        return np.asarray((true == predicted).mean(axis=1), dtype=np.float64)
    samples = true.shape[0]
    offset = (np.arange(samples) * classes)[:, None]
    size = samples * classes
    support = np.bincount((true + offset).ravel(), minlength=size).reshape(samples, classes)
    called = np.bincount((predicted + offset).ravel(), minlength=size).reshape(samples, classes)
    hits = np.bincount((true + offset)[true == predicted], minlength=size).reshape(samples, classes)
    denominator = support + called
    f1 = np.divide(2 * hits, denominator, out=np.zeros(hits.shape), where=denominator > 0)
    # Averaged over the classes in the sample's truth: a class the model says but the
    # rows never have (a new label, asked about an old episode) is paid for once, by the recall of the rows it
    # took, not a second time by a zero of its own (scikit-learn's default, which punishes a growing label set).
    present = support > 0
    return np.asarray((f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1), dtype=np.float64)


def metric_value(labels: Sequence[str], predicted: Sequence[str], metric: Metric) -> float:
    """`metric` of the predictions against the labels (0.0 for no rows); a text metric scores the predictions as
    generated answers to the labels as references, as a corpus, divided by 100."""
    if not labels:
        return 0.0
    if is_text_metric(metric):
        return corpus_score(metric, predicted, labels) / 100
    classes, (true, guess) = encode_labels(labels, predicted)
    return float(batched_metric(true[None, :], guess[None, :], len(classes), metric)[0])

"""Classification scores and continual-learning measures, over plain label lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from common.scores import metric_value
from trainer.results import ClassScores, Scores


def score_predictions(true: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Scores:
    """Accuracy and macro-F1 (common.scores, as the gate scores), per-class P/R/F1 and the confusion matrix."""
    labels = [*labels, *sorted(set(true) - set(labels))]  # a label the model cannot say still counts as missed
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, predicted, strict=True):
        confusion[index[t], index[p]] += 1
    per_class: dict[str, ClassScores] = {}
    for i, label in enumerate(labels):
        hits, support, said = int(confusion[i, i]), int(confusion[i].sum()), int(confusion[:, i].sum())
        precision = hits / said if said else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision=precision, recall=recall, f1=f1, support=support)
    return Scores(
        rows=len(true),
        accuracy=metric_value(true, predicted, "accuracy"),
        macro_f1=metric_value(true, predicted, "macro_f1"),
        per_class=per_class,
        labels=tuple(labels),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def forgetting(before: Mapping[int, float], after: Mapping[int, float], newest: int) -> dict[int, float]:
    """Per earlier episode, the score before minus the score after (positive: forgotten)."""
    return {e: before[e] - after[e] for e in sorted(after) if e < newest and e in before}


def backward_transfer(before: Mapping[int, float], after: Mapping[int, float], newest: int) -> float | None:
    """Mean change on the earlier episodes (negative: forgetting); None without an earlier episode."""
    changes = [after[e] - before[e] for e in after if e < newest and e in before]
    return float(np.mean(changes)) if changes else None


def matrix_forgetting(matrix: Sequence[Mapping[int, float]]) -> dict[int, float]:
    """Chaudhry et al.: for each episode before the last stage, best earlier score minus the last stage's score.

    `matrix[k][e]` is the score on episode e of the model after stage k.
    """
    last = matrix[-1]
    result = {}
    for episode in sorted(last):
        earlier = [row[episode] for row in matrix[:-1] if episode in row]
        if earlier and episode < len(matrix) - 1:
            result[episode] = max(earlier) - last[episode]
    return result

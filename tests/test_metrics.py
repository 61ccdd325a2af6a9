"""UAR, streaming and direct, against numbers worked out by hand."""
import numpy as np
import pytest

from tfadvser.evaluation.metrics import UnweightedAverageRecall, confusion_matrix, recall_per_class, uar_from_confusion


def one_hot_scores(predictions, n):
    return np.eye(n, dtype=np.float32)[predictions]


def test_direct_uar_literal():
    y_true = [0, 0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 1]
    # recalls: class 0 3/4, class 1 1/2, class 2 0/1 -> UAR 5/12; accuracy would be 4/7
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert uar_from_confusion(matrix) == pytest.approx(5 / 12)


def test_streaming_uar_with_a_class_absent_from_a_batch():
    metric = UnweightedAverageRecall(3)
    # batch 1 has no class 2; batch 2 has no class 0
    metric.update_state(np.array([0, 0, 0, 0, 1]), one_hot_scores([0, 0, 0, 1, 1], 3))
    metric.update_state(np.array([1, 2]), one_hot_scores([0, 1], 3))
    assert float(metric.result()) == pytest.approx(5 / 12)
    metric.reset_state()
    metric.update_state(np.array([2, 2]), one_hot_scores([2, 0], 3))
    # only class 2 seen so far: the mean runs over present classes
    assert float(metric.result()) == pytest.approx(0.5)


def test_streaming_matches_direct_on_random_data():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 200)
    scores = rng.normal(size=(200, 7)).astype(np.float32)
    metric = UnweightedAverageRecall(7)
    for start in range(0, 200, 16):
        metric.update_state(y_true[start:start + 16], scores[start:start + 16])
    direct = uar_from_confusion(confusion_matrix(y_true, scores.argmax(1), 7))
    assert float(metric.result()) == pytest.approx(direct, abs=1e-6)


def test_majority_class_scores_chance():
    y_true = np.array([0] * 90 + [1] * 5 + [2] * 5)
    assert uar_from_confusion(confusion_matrix(y_true, np.zeros(100, int), 3)) == pytest.approx(1 / 3)


def test_absent_class_has_no_recall():
    recall = recall_per_class(confusion_matrix([0, 1], [0, 0], 3))
    assert recall[0] == 1.0 and recall[1] == 0.0 and np.isnan(recall[2])

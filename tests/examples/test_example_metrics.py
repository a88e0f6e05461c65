"""AP and ROC AUC follow scikit-learn's definitions (values worked out by hand)."""

import numpy as np
import pytest
import torch

from examples.evaluate import average_precision, pool_scores, roc_auc


def test_ap_and_auc_of_the_textbook_example():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert average_precision(y, s) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert roc_auc(y, s) == pytest.approx(0.75)


def test_ties_are_one_threshold():
    y, s = [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]
    assert average_precision(y, s) == pytest.approx(0.5)
    assert roc_auc(y, s) == pytest.approx(0.5)
    y, s = [1, 1, 0, 0, 1], [0.9, 0.7, 0.7, 0.2, 0.1]
    # thresholds 0.9 (P=1, R=1/3), 0.7 (P=2/3, R=2/3), 0.2 (P=2/4), 0.1 (P=3/5, R=1)
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert roc_auc(y, s) == pytest.approx((2 + 1.5 + 0) / 6)


def test_perfect_and_reversed_rankings():
    y = np.r_[np.zeros(10), np.ones(5)]
    s = np.arange(15.0)
    assert average_precision(y, s) == 1.0 and roc_auc(y, s) == 1.0
    assert roc_auc(y, -s) == 0.0
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc(np.ones(3), np.arange(3.0))


def test_pooling():
    m = torch.zeros(2, 1, 10, 10)
    m[0, 0, 0, :5] = 1.0
    assert pool_scores(m, "mean").tolist() == pytest.approx([0.05, 0.0])
    assert pool_scores(m, "max").tolist() == [1.0, 0.0]
    assert pool_scores(m, "topk", topk=0.1).tolist() == pytest.approx([0.5, 0.0])

"""Offline linear evaluation against scikit-learn, the few-label subset, and fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslkit.evaluation import finetune_eval, fit_linear_classifier, linear_eval
from sslkit.evaluation.linear import per_class_subset, topk_accuracy


@pytest.fixture(scope="module")
def digit_pixels() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    return x[:1200], y[:1200], x[1200:], y[1200:]


@pytest.mark.parametrize("weight_decay", [1e-4, 1e-2])
def test_logistic_regression_matches_scikit_learn(digit_pixels: tuple[torch.Tensor, ...], weight_decay: float) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, ytr, xte, yte = digit_pixels
    ours = fit_linear_classifier(xtr, ytr, 10, weight_decay)(xte).argmax(1).numpy()
    # Same objective: mean cross-entropy + wd/2 ||W||^2  <=>  C = 1 / (wd * N) on standardised features.
    scaler = StandardScaler().fit(xtr.numpy())
    ref = LogisticRegression(C=1.0 / (weight_decay * len(ytr)), max_iter=5000, tol=1e-8)
    ref.fit(scaler.transform(xtr.numpy()), ytr.numpy())
    theirs = ref.predict(scaler.transform(xte.numpy()))
    assert (ours == theirs).mean() >= 0.98
    assert abs((ours == yte.numpy()).mean() - (theirs == yte.numpy()).mean()) <= 0.01


def test_linear_eval_reports_top1_top5_and_selects_the_penalty(digit_pixels: tuple[torch.Tensor, ...]) -> None:
    result = linear_eval(*digit_pixels, num_classes=10)
    assert 0.9 < result.top1 <= result.top5 <= 1.0 and result.train_top1 >= result.top1
    assert result.num_train == 1200 and result.num_test == 597 and result.num_features == 64
    fixed = linear_eval(*digit_pixels, weight_decays=[result.weight_decay])
    assert fixed.top1 == result.top1


def test_topk_accuracy_and_per_class_subset() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    assert topk_accuracy(logits, torch.tensor([0, 0, 0]), 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, torch.tensor([0, 0, 0]), 2) == pytest.approx(2 / 3)
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    idx = per_class_subset(labels, 5, seed=1)
    assert np.bincount(labels[idx].numpy()).tolist() == [5, 3, 5]
    assert torch.equal(idx, per_class_subset(labels, 5, seed=1))


def test_bad_labels_and_features_are_named() -> None:
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="labels must be in \\[0, 2\\].*found -1..1"):
        fit_linear_classifier(x, torch.tensor([-1, 1] * 5), 3)
    with pytest.raises(ValueError, match="features must be \\(N, D\\)"):
        fit_linear_classifier(x[:, None], torch.zeros(10, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        fit_linear_classifier(torch.full((10, 4), float("nan")), torch.zeros(10, dtype=torch.long), 2)


def test_finetune_trains_a_copy_and_learns(tiny_digits) -> None:  # type: ignore[no-untyped-def]
    from sslkit.backbones import create_backbone
    from sslkit.data import eval_transform

    torch.manual_seed(0)
    encoder = create_backbone("small_cnn", width=8)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    train, _, test = tiny_digits.splits
    t = eval_transform(16, tiny_digits.mean, tiny_digits.std)
    result = finetune_eval(encoder, train, test, 10, t, t, epochs=3, lr=3e-3, batch_size=64)
    assert result.top1 > 0.6, result  # chance is 0.1; measured 0.9 here
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())

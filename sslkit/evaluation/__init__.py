"""Offline evaluation of frozen or fine-tuned encoders: feature extraction, linear eval, fine-tuning."""

from sslkit.evaluation.embed import embed, labelled
from sslkit.evaluation.finetune import finetune_eval
from sslkit.evaluation.linear import (
    LinearEvalResult,
    fit_linear_classifier,
    linear_eval,
)

__all__ = ["LinearEvalResult", "embed", "labelled", "finetune_eval", "fit_linear_classifier", "linear_eval"]

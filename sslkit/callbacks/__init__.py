"""Lightning callbacks."""

from sslkit.callbacks.knn import KNNOnlineEvaluator
from sslkit.callbacks.online_evaluator import SSLOnlineEvaluator
from sslkit.callbacks.run_artifacts import RunArtifacts

__all__ = ["KNNOnlineEvaluator", "RunArtifacts", "SSLOnlineEvaluator"]

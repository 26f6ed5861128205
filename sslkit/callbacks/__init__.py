"""Lightning callbacks."""

from sslkit.callbacks.online_evaluator import SSLOnlineEvaluator
from sslkit.callbacks.run_artifacts import RunArtifacts

__all__ = ["RunArtifacts", "SSLOnlineEvaluator"]

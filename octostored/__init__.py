"""octostored: the per-user daemon that indexes MLflow stores and serves them over a socket."""

__version__ = "0.1.0"

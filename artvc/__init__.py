"""artvc: local-first versioning of machine-learning artifacts."""
from __future__ import annotations

from .api import CheckoutResult, CommitResult, DiffResult, Repo, Run, get
from .artifact import Artifact, Version
from .errors import ArtvcError

__version__ = "0.1.0"
__all__ = ["Repo", "Artifact", "Version", "Run", "ArtvcError", "CommitResult", "DiffResult", "CheckoutResult", "get", "__version__"]

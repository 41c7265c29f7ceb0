"""Vectorised training runs: replicates and search trials, chunked, cancellable, resumable."""

"""Models: catalog of checkpoints, probing, offline loading, load-time tuning (fast path), the tiny demo model and the manager."""

"""Models: catalog of checkpoints, probing, offline loading, the tiny demo model and the manager."""

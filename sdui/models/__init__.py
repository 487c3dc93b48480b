"""Models: checkpoint catalog, probing, offline loading, load-time tuning (fast path), the tiny demo model, the
manager and what it prepares per job (VAE, LoRAs, embeddings)."""

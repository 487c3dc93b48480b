"""sdui: a Stable Diffusion web UI. Nothing runs at import; app.py wires the parts together."""

__version__ = "0.1.0"

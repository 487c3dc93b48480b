"""The generation engine: diffusers in, images out. Knows nothing about Gradio or HTTP."""

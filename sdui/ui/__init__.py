"""The Gradio web UI: one module per tab, a shared parameter panel, and the job-following handler."""

"""Extra networks: LoRA/LyCORIS, textual-inversion embeddings and VAEs — their files, formats and prompt tags.

The model manager owns what is loaded; these modules read files and compute what a job applies.
"""

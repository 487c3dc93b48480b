"""A1111 prompt syntax: emphasis weights, BREAK, 75-token chunks, weighted CLIP embeddings.

`(x)` ×1.1, `[x]` ÷1.1, `(x:1.3)`, nesting multiplies, `\\(` escapes a bracket, `BREAK` starts a
new chunk. Long prompts are split into chunks of 75 tokens, each encoded as 77 (BOS + 75 + EOS/pad)
and concatenated, so nothing is truncated. SDXL encodes every chunk with both of its encoders
(penultimate layers side by side) and takes the pooled embedding from the first chunk, as A1111 does.

Textual-inversion embeddings are found by their names' tokens while chunking (an `EmbeddingSet`), stand in the
chunk as placeholder tokens, and replace those tokens' embeddings inside the text encoder while one prompt is
encoded (a forward hook on its token-embedding layer, removed afterwards); an embedding never spans two chunks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from sdui.networks.embeddings import Embedding, EmbeddingSet

CHUNK_TOKENS = 75
EMPHASIS = 1.1
# When a chunk fills up, a comma within this many tokens of its end starts the next chunk instead.
COMMA_BACKTRACK = 20
# The token id an embedding's vectors stand on in a chunk (A1111's choice); the text encoder never sees its row.
PLACEHOLDER = 0

_TOKEN_RE = re.compile(
    r"""
    \\[()\[\]\\]          # escaped bracket or backslash
    | \\                  # lone backslash
    | \( | \[             # openers
    | :\s*([+-]?[.\d]+)\s*\)  # explicit weight closing a round bracket
    | \) | \]             # closers
    | [^\\()\[\]:]+       # plain text
    | :                   # a colon that is not a weight
    """,
    re.VERBOSE,
)
_BREAK_RE = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_emphasis(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) runs; a BREAK keyword appears as ("BREAK", -1.0)."""
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for match in _TOKEN_RE.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\") and len(piece) == 2:
            res.append([piece[1], 1.0])
        elif piece == "(":
            round_open.append(len(res))
        elif piece == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            try:
                factor = float(weight)
            except ValueError:
                res.append([piece, 1.0])
                continue
            multiply(round_open.pop(), factor)
        elif piece == ")" and round_open:
            multiply(round_open.pop(), EMPHASIS)
        elif piece == "]" and square_open:
            multiply(square_open.pop(), 1 / EMPHASIS)
        else:
            for i, part in enumerate(_BREAK_RE.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1.0])
                res.append([part, 1.0])
    # Unclosed brackets still emphasise everything after them, as A1111 does.
    for start in round_open:
        multiply(start, EMPHASIS)
    for start in square_open:
        multiply(start, 1 / EMPHASIS)

    merged: list[list] = []
    for item in res:
        if item[0] == "" and item[1] != -1.0:
            continue
        if merged and merged[-1][1] == item[1] and item[1] != -1.0:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return [(t, w) for t, w in merged] or [("", 1.0)]


class EmbeddingFix(NamedTuple):
    """An embedding's vectors in a chunk: they stand on the placeholder tokens from `offset` on."""

    offset: int
    embedding: Embedding


@dataclass
class Chunk:
    """Up to 75 prompt tokens and their weights (BOS/EOS/padding are added when encoding), and the embeddings
    whose vectors replace some of those tokens."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[EmbeddingFix] = field(default_factory=list)


def tokenize_chunks(tokenizer, prompt: str, embeddings: EmbeddingSet | None = None) -> list[Chunk]:
    """Parse `prompt` and split its tokens into chunks of at most 75 (BREAK forces a new chunk); the names of
    `embeddings` become their vectors, each kept whole in one chunk."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    chunks: list[Chunk] = []
    current = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        chunks.append(current)
        current, last_comma = Chunk(), -1

    for text, weight in parse_emphasis(prompt):
        if weight == -1.0 and text == "BREAK":
            close()
            continue
        ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
        position = 0
        while position < len(ids):
            token = ids[position]
            if token == comma:
                last_comma = len(current.tokens)
            elif len(current.tokens) == CHUNK_TOKENS and last_comma >= 0 \
                    and len(current.tokens) - last_comma <= COMMA_BACKTRACK:
                rest = _split(current, last_comma + 1)
                close()
                current = rest
            if len(current.tokens) == CHUNK_TOKENS:
                close()
            found = embeddings.find_at(ids, position) if embeddings is not None else None
            if found is None:
                current.tokens.append(token)
                current.weights.append(weight)
                position += 1
                continue
            embedding, name_length = found
            if len(current.tokens) + embedding.n_vectors > CHUNK_TOKENS:
                close()
            current.fixes.append(EmbeddingFix(len(current.tokens), embedding))
            current.tokens += [PLACEHOLDER] * embedding.n_vectors
            current.weights += [weight] * embedding.n_vectors
            position += name_length
    if current.tokens or not chunks:
        close()
    return chunks


def _split(chunk: Chunk, cut: int) -> Chunk:
    """Cut `chunk` after `cut` tokens; return the tail as a new chunk, its embeddings moved along with it."""
    # A cut is always just after a comma token, so it never falls inside an embedding's placeholders.
    rest = Chunk(chunk.tokens[cut:], chunk.weights[cut:],
                 [EmbeddingFix(f.offset - cut, f.embedding) for f in chunk.fixes if f.offset >= cut])
    chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
    chunk.fixes = [f for f in chunk.fixes if f.offset < cut]
    return rest


def used_embeddings(chunks: list[Chunk]) -> set[str]:
    """The names of the embeddings these chunks use."""
    return {fix.embedding.name for chunk in chunks for fix in chunk.fixes}


def chunk_ids(tokenizer, chunk: Chunk) -> tuple[list[int], list[float]]:
    """The 77 ids of one chunk (BOS + tokens + EOS + padding) and their weights (1.0 for specials)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.bos_token_id, *chunk.tokens, tokenizer.eos_token_id]
    weights = [1.0, *chunk.weights, 1.0]
    fill = CHUNK_TOKENS + 2 - len(ids)
    return ids + [pad] * fill, weights + [1.0] * fill


def encode_chunks(text_encoder, tokenizer, chunks: list[Chunk], clip_skip: int = 1) -> torch.Tensor:
    """Encode chunks as (1, 77 * len(chunks), dim): each chunk on its own, weights applied as A1111 does, the
    chunks' embeddings (their first vector set) in place of their placeholder tokens."""
    ids, weights = _ids_and_weights(tokenizer, chunks, text_encoder.device)
    with torch.inference_mode(), embedding_vectors(text_encoder, chunks, 0):
        if clip_skip > 1:
            out = text_encoder(ids, output_hidden_states=True)
            # transformers 5 flattened CLIPTextModel (no `.text_model`); older versions nest it.
            final_norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm
            hidden = final_norm(out.hidden_states[-clip_skip])
        else:
            hidden = text_encoder(ids)[0]
        return apply_weights(hidden, weights)


def encode_chunks_sdxl(text_encoders: list, tokenizers: list, chunks: list[Chunk],
                       clip_skip: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL: (1, 77 * len(chunks), dim1 + dim2) from both encoders' penultimate layers, and the pooled
    embedding (1, pooled_dim) of the last encoder for the first chunk. Encoder i takes the chunks' embeddings'
    vector set i (`clip_l`, `clip_g`; the refiner's one encoder `clip_g`, as its `EmbeddingSet` was built)."""
    parts, pooled = [], None
    with torch.inference_mode():
        for index, (encoder, tokenizer) in enumerate(zip(text_encoders, tokenizers)):
            ids, weights = _ids_and_weights(tokenizer, chunks, encoder.device)
            with embedding_vectors(encoder, chunks, index):
                out = encoder(ids, output_hidden_states=True)
            parts.append(out.hidden_states[-(clip_skip + 1)])
            pooled = out[0][:1]  # the projected pooled output (text_embeds) of the last encoder
        hidden = torch.cat(parts, dim=-1)
        return apply_weights(hidden, weights), pooled


def _ids_and_weights(tokenizer, chunks: list[Chunk], device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [chunk_ids(tokenizer, c) for c in chunks]
    ids = torch.tensor([r[0] for r in rows], device=device)
    return ids, torch.tensor([r[1] for r in rows], dtype=torch.float32)


def apply_weights(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(chunks, 77, dim) → (1, chunks * 77, dim): A1111 scales each chunk by its token weights, then
    restores the chunk's mean."""
    z = hidden.float().cpu()
    for i in range(z.shape[0]):
        if torch.all(weights[i] == 1.0):
            continue
        original_mean = z[i].mean()
        z[i] = z[i] * weights[i].unsqueeze(-1)
        z[i] = z[i] * (original_mean / z[i].mean())
    return z.reshape(1, -1, z.shape[-1]).to(device=hidden.device, dtype=hidden.dtype)


def encode_prompt_pair(text_encoder, tokenizer, prompt: str, negative: str, clip_skip: int = 1, *,
                       embeddings: EmbeddingSet | None = None,
                       used: set[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """prompt_embeds and negative_prompt_embeds, padded with empty chunks to the same length.

    Names of `embeddings` in either prompt become their vectors; `used`, when given, receives those names."""
    pos, neg = _chunk_pair(tokenizer, prompt, negative, embeddings, used)
    return (encode_chunks(text_encoder, tokenizer, pos, clip_skip),
            encode_chunks(text_encoder, tokenizer, neg, clip_skip))


def encode_prompt_pair_sdxl(text_encoders: list, tokenizers: list, prompt: str, negative: str,
                            clip_skip: int = 1, *, embeddings: EmbeddingSet | None = None,
                            used: set[str] | None = None) -> dict[str, torch.Tensor]:
    """The four SDXL conditioning tensors, named as the diffusers SDXL pipelines take them.

    `embeddings` must be built for these encoders (SDXL: clip_l + clip_g; the refiner: clip_g); `used`, when
    given, receives the names of those used in either prompt."""
    pos, neg = _chunk_pair(tokenizers[0], prompt, negative, embeddings, used)
    embeds, pooled = encode_chunks_sdxl(text_encoders, tokenizers, pos, clip_skip)
    negative_embeds, negative_pooled = encode_chunks_sdxl(text_encoders, tokenizers, neg, clip_skip)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds,
            "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}


def _chunk_pair(tokenizer, prompt: str, negative: str, embeddings: EmbeddingSet | None,
                used: set[str] | None) -> tuple[list[Chunk], list[Chunk]]:
    pos = tokenize_chunks(tokenizer, prompt, embeddings)
    neg = tokenize_chunks(tokenizer, negative, embeddings)
    while len(pos) < len(neg):
        pos.append(Chunk())
    while len(neg) < len(pos):
        neg.append(Chunk())
    if used is not None:
        used.update(used_embeddings(pos + neg))
    return pos, neg


@contextlib.contextmanager
def embedding_vectors(text_encoder, chunks: list[Chunk], index: int) -> Iterator[None]:
    """While inside, `text_encoder` (fed these chunks as 77-token rows) sees each chunk's embeddings' vector set
    `index` in place of their placeholder tokens; nothing is registered when the chunks use no embedding."""
    fixes = [(row, fix) for row, chunk in enumerate(chunks) for fix in chunk.fixes]
    if not fixes:
        yield
        return
    # transformers 5 flattened CLIPTextModel (no `.text_model`); older versions nest it.
    layer = getattr(text_encoder, "text_model", text_encoder).embeddings.token_embedding
    replacements = [(row, 1 + fix.offset, _vectors(fix.embedding, index, layer.embedding_dim))
                    for row, fix in fixes]  # 1 +: each row starts with BOS

    def replace(module, args, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for row, start, vectors in replacements:
            output[row, start:start + vectors.shape[0]] = vectors.to(output.device, output.dtype)
        return output

    handle = layer.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _vectors(embedding: Embedding, index: int, width: int) -> torch.Tensor:
    if index >= len(embedding.vectors) or embedding.vectors[index].shape[-1] != width:
        have = ", ".join(str(v.shape[-1]) for v in embedding.vectors)
        raise ValueError(f"embedding {embedding.name!r} has vector sets of width {have}, but text encoder "
                         f"{index + 1} is {width} wide: build its EmbeddingSet for this model's encoders")
    return embedding.vectors[index]

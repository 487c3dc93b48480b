"""Textual-inversion embeddings: reading A1111 .pt/.safetensors and diffusers .bin files, and the set that fits a model.

An embedding is used by its file name in a prompt; `EmbeddingSet` finds those names among a prompt's tokens for
one model (its text encoders' widths decide which embeddings fit) and holds the vectors the prompt encoder uses.
Nothing here touches a tokenizer or a model: names are matched on their token ids, and the vectors enter the text
encoder only while `engine/prompts.py` encodes one prompt.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sdui.models.errors import BrokenModel, ModelError, UnrecognizedModel
from sdui.models.files import load_pickle_state_dict, read_safetensors_header, refuse_oversized, unsafe_globals
from sdui.networks.folders import NetworkFile

MAX_VECTORS = 75  # a prompt chunk's tokens: an embedding is never split across two chunks
MAX_EMBEDDING_BYTES = 64 * 2**20  # real ones are kilobytes; bigger files are checkpoints or LoRAs put here by mistake
SINGLE = "emb_params"  # the key of the one vector set of an SD1/SD2 embedding, whatever its file called it
SDXL_KEYS = ("clip_l", "clip_g")  # SDXL's first (CLIP ViT-L) and second (OpenCLIP bigG) text encoder
REFINER_WIDTH = 1280  # only SDXL's second text encoder, the refiner's one, is this wide
PARAMETER_DICT = "torch.nn.modules.container.ParameterDict"


@dataclass(frozen=True)
class EmbeddingData:
    """What one embedding file holds: its vector sets, (n_vectors, width) each, keyed `emb_params` or
    `clip_l`/`clip_g`, and the training details A1111 records."""

    vectors: dict[str, torch.Tensor]
    step: int | None = None
    checkpoint: str | None = None  # A1111's sd_checkpoint (a short hash)
    checkpoint_name: str | None = None


@dataclass(frozen=True, eq=False)
class Embedding:
    """One embedding for one model: a (n_vectors, width) tensor per text encoder, in the model's encoder order."""

    name: str
    vectors: tuple[torch.Tensor, ...]
    file: NetworkFile | None = None
    step: int | None = None
    checkpoint: str | None = None  # the sd_checkpoint / sd_checkpoint_name it was trained on, if recorded
    checkpoint_name: str | None = None

    @property
    def n_vectors(self) -> int:
        return int(self.vectors[0].shape[0])


def read_embedding_file(path: Path) -> EmbeddingData:
    """Read an embedding file (A1111 .pt, .safetensors, diffusers .bin); ModelError subclasses name the file."""
    path = Path(path)
    refuse_oversized(path, MAX_EMBEDDING_BYTES, "an embedding", "is it a checkpoint or a LoRA?")
    if path.suffix.lower() == ".safetensors":
        obj = _load_safetensors(path)
    else:
        obj = _load_pickle(path)
    return _parse(obj, path)


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise BrokenModel(f"{path}: not a readable safetensors file ({e})", path) from e


def _load_pickle(path: Path) -> object:
    if unsafe_globals(path) == [PARAMETER_DICT]:
        # Old A1111 files keep their vectors in an nn.ParameterDict. Allowing that one torch class only makes the
        # unpickler build an empty ParameterDict and fill its __dict__ with tensors and plain data; no code runs,
        # and the object is never called (its `_parameters` are read directly).
        with torch.serialization.safe_globals([torch.nn.ParameterDict]):
            return _torch_load(path)
    try:
        return load_pickle_state_dict(path)  # the safety scan, the refusal of code and the error messages
    except UnrecognizedModel:
        # It loaded with weights_only=True but holds no top-level tensors: A1111's nested layout. Read it as is.
        return _torch_load(path)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            struct.error) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BrokenModel(f"{path}: not a readable embedding ({reason})", path) from e


def _parse(obj: object, path: Path) -> EmbeddingData:
    if not isinstance(obj, dict):
        raise UnrecognizedModel(f"{path}: holds a {type(obj).__name__}, not an embedding's tensors", path)
    if "string_to_param" in obj:
        params = obj["string_to_param"]
        if isinstance(params, torch.nn.ParameterDict):
            params = vars(params).get("_parameters", {})
        tensors = [v for v in params.values() if isinstance(v, torch.Tensor)] if isinstance(params, dict) else []
        if len(tensors) != 1:
            raise UnrecognizedModel(f"{path}: string_to_param holds {len(tensors)} tensors; an A1111 embedding "
                                    "holds exactly one", path)
        sets = {SINGLE: tensors[0]}
    elif any(key in obj for key in SDXL_KEYS):
        sets = {key: obj[key] for key in SDXL_KEYS if key in obj}
    elif SINGLE in obj:
        sets = {SINGLE: obj[SINGLE]}
    else:
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:  # diffusers' files hold one entry, {"<token>": vectors}
            names = ", ".join(sorted(map(str, obj))[:8]) or "nothing"
            raise UnrecognizedModel(f"{path}: not an embedding: it holds {names}; expected string_to_param "
                                    "(A1111), emb_params, clip_l/clip_g (SDXL) or one token's vectors "
                                    "(diffusers)", path)
        sets = {SINGLE: tensors[0]}
    return EmbeddingData(vectors={key: _matrix(value, key, path) for key, value in sets.items()},
                         step=_optional(obj.get("step"), int), checkpoint=_optional(obj.get("sd_checkpoint"), str),
                         checkpoint_name=_optional(obj.get("sd_checkpoint_name"), str))


def _matrix(value: object, key: str, path: Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise BrokenModel(f"{path}: {key} is not a tensor of floats", path)
    matrix = value.detach().to("cpu", torch.float32)
    if matrix.dim() == 1:
        matrix = matrix.unsqueeze(0)  # one vector
    if matrix.dim() != 2 or matrix.shape[0] == 0:
        raise BrokenModel(f"{path}: {key} has shape {list(value.shape)}; expected (n_vectors, width)", path)
    return matrix.contiguous()


def _optional(value: object, kind: type) -> object:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


@dataclass
class EmbeddingSet:
    """The embeddings that fit one model's text encoders (`loaded`), and the others with why (`skipped`).

    `skipped` is keyed by name; a second file of a name already listed is keyed by its relative path."""

    widths: tuple[int, ...]
    loaded: dict[str, Embedding] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # first token id -> (name token ids, embedding), longest names first: A1111's ids lookup
    _lookup: dict[int, list[tuple[tuple[int, ...], Embedding]]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, files: Sequence[NetworkFile], widths: tuple[int, ...], tokenizer,
              read: Callable[[Path], EmbeddingData] | None = None, *,
              keys: tuple[str, ...] | None = None) -> EmbeddingSet:
        """Read `files` (through `read`, default `read_embedding_file`) and keep those that fit `widths`.

        `keys` names the vector set each text encoder takes; by default `clip_l`, `clip_g` for two encoders and
        for one `emb_params`, or `clip_g` when it is 1280 wide (the SDXL refiner's, SDXL's second encoder); a
        one-set file fits any one encoder of its width. Names are tokenized with `tokenizer`, which is not changed."""
        if keys is None:
            keys = SDXL_KEYS if len(widths) == 2 else ("clip_g",) if tuple(widths) == (REFINER_WIDTH,) else (SINGLE,)
        if len(keys) != len(widths):
            raise ValueError(f"keys {keys} and widths {widths} must name the same number of text encoders")
        result = cls(tuple(widths))
        seen: dict[tuple[int, ...], str] = {}
        for file in files:
            if file.name in result.loaded or file.name in result.skipped:
                result.skipped[file.rel] = f"another embedding named {file.name!r} is already listed"
                continue
            try:
                data = (read or read_embedding_file)(file.path)
            except ModelError as e:
                result.skipped[file.name] = str(e)
                continue
            vectors = _fit(data, tuple(widths), keys)
            if isinstance(vectors, str):
                result.skipped[file.name] = vectors
                continue
            ids = tuple(tokenizer(file.name, add_special_tokens=False, truncation=False, verbose=False).input_ids)
            if not ids:
                result.skipped[file.name] = "its name has no tokens to find in a prompt"
            elif ids in seen:
                result.skipped[file.name] = f"its name reads as the same tokens as {seen[ids]!r}, which is used"
            else:
                seen[ids] = file.name
                result.add(Embedding(file.name, vectors, file, data.step, data.checkpoint, data.checkpoint_name), ids)
        return result

    @classmethod
    def for_pipeline(cls, files: Sequence[NetworkFile], pipe,
                     read: Callable[[Path], EmbeddingData] | None = None) -> EmbeddingSet:
        """`build` for a diffusers pipeline: SD1/SD2, SDXL, or the SDXL refiner (second encoder only)."""
        first, second = getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)
        encoders = [e for e in (first, second) if e is not None]
        keys = None if second is None else SDXL_KEYS if first is not None else SDXL_KEYS[1:]
        tokenizer = pipe.tokenizer if first is not None else pipe.tokenizer_2
        return cls.build(files, tuple(e.config.hidden_size for e in encoders), tokenizer, read, keys=keys)

    def add(self, embedding: Embedding, name_tokens: Sequence[int]) -> None:
        """Register `embedding` under the token ids of its name (what `find_at` matches)."""
        ids = tuple(name_tokens)
        self.loaded[embedding.name] = embedding
        entries = self._lookup.setdefault(ids[0], [])
        entries.append((ids, embedding))
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)

    def find_at(self, tokens: Sequence[int], position: int) -> tuple[Embedding, int] | None:
        """The embedding whose name's tokens start at `position` (longest first) and that name's token count."""
        for ids, embedding in self._lookup.get(tokens[position], ()):
            if tuple(tokens[position:position + len(ids)]) == ids:
                return embedding, len(ids)
        return None


def _fit(data: EmbeddingData, widths: tuple[int, ...], keys: tuple[str, ...]) -> tuple[torch.Tensor, ...] | str:
    """The vector set per text encoder, or why the embedding does not fit this model."""
    sets = data.vectors
    most = max(int(v.shape[0]) for v in sets.values())
    if most > MAX_VECTORS:
        return f"has {most} vectors, more than the {MAX_VECTORS} tokens of a prompt chunk"
    if len(keys) == 1 and len(sets) == 1:
        chosen = list(sets.values())  # one set for one encoder, whatever the file called it
    elif all(key in sets for key in keys):
        chosen = [sets[key] for key in keys]
    elif len(keys) == 1:
        return f"made for SDXL ({' and '.join(sets)} vectors); this model has one text encoder"
    else:
        have = " and ".join(sets)
        return f"made for a model with one text encoder ({have} vectors); this SDXL model needs {' and '.join(keys)}"
    counts = {int(v.shape[0]) for v in chosen}
    if len(counts) > 1:
        return f"its vector sets hold different numbers of vectors ({', '.join(map(str, sorted(counts)))})"
    for index, (vectors, width) in enumerate(zip(chosen, widths)):
        if int(vectors.shape[1]) != width:
            encoder = "text encoder" if len(widths) == 1 else f"text encoder {index + 1} ({keys[index]})"
            return f"made for width {int(vectors.shape[1])}, this model's {encoder} is {width}"
    return tuple(chosen)

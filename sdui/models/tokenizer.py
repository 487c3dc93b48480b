"""The CLIP BPE tokenizer every SD family uses (49408 tokens), built offline and shipped with sdui.

The vocabulary follows from the BPE merges file that open_clip ships: the 256 byte characters, the
same with `</w>`, one token per merge, then <|startoftext|> and <|endoftext|>. The built files live
in `configs/clip_tokenizer/`; `python -m sdui.models.tokenizer` rebuilds them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from functools import lru_cache
from pathlib import Path

VOCAB_SIZE = 49408
MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
SHIPPED_DIR = Path(__file__).resolve().parent / "configs" / "clip_tokenizer"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def find_bpe_file() -> Path:
    """Locate open_clip's `bpe_simple_vocab_16e6.txt.gz` without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open_clip is not installed; run ./webui.sh --exit to install dependencies")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def build_vocab_and_merges(bpe_file: Path) -> tuple[dict[str, int], list[str]]:
    lines = gzip.open(bpe_file).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_tokenizer_files(target: Path, bpe_file: Path | None = None, pad_token: str = EOS) -> Path:
    """Write vocab.json, merges.txt and the configs that CLIPTokenizer.from_pretrained reads.

    `pad_token` is "<|endoftext|>" for SD1.x and SDXL's first encoder, "!" for SD2.x and SDXL's second.
    """
    target.mkdir(parents=True, exist_ok=True)
    if bpe_file is None and (SHIPPED_DIR / "vocab.json").exists():
        shutil.copyfile(SHIPPED_DIR / "vocab.json", target / "vocab.json")
        shutil.copyfile(SHIPPED_DIR / "merges.txt", target / "merges.txt")
    else:
        vocab, merges = build_vocab_and_merges(bpe_file or find_bpe_file())
        (target / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (target / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH, "do_lower_case": True,
              "clean_up_tokenization_spaces": True, "errors": "replace", **special}
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (target / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return target


@lru_cache(maxsize=4)
def load_tokenizer(pad_token: str = EOS):
    """A CLIPTokenizer from the shipped files (from_pretrained: transformers 5 ignores vocab_file=)."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(SHIPPED_DIR, model_max_length=MAX_LENGTH, pad_token=pad_token)
    if len(tok) != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer in {SHIPPED_DIR} has {len(tok)} tokens, expected {VOCAB_SIZE}")
    return tok


if __name__ == "__main__":
    write_tokenizer_files(SHIPPED_DIR, find_bpe_file())
    print(f"wrote {SHIPPED_DIR}")

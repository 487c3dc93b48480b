"""The shipped CLIP tokenizer and the deterministic tiny model."""

import hashlib
import json

from sdui.models import tokenizer
from sdui.models.tiny import build_tiny_pipeline, save_tiny_model

ASTRONAUT_IDS = [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 518, 3293, 49407]


def test_tokenizer_ids_match_real_clip():
    tok = tokenizer.load_tokenizer()
    assert len(tok) == tokenizer.VOCAB_SIZE == 49408
    assert tok("a photo of an astronaut riding a horse on the moon").input_ids == ASTRONAUT_IDS
    padded = tok("hi", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407


def test_sd2_style_tokenizer_pads_with_bang():
    tok = tokenizer.load_tokenizer(pad_token="!")
    assert tok.pad_token_id == 0
    assert tok("a photo", padding="max_length", max_length=77).input_ids[-1] == 0


def test_shipped_tokenizer_equals_one_built_from_open_clip_bpe(tmp_path):
    built = tokenizer.write_tokenizer_files(tmp_path, tokenizer.find_bpe_file())
    for name in ("vocab.json", "merges.txt"):
        assert (built / name).read_bytes() == (tokenizer.SHIPPED_DIR / name).read_bytes(), name
    assert len(json.loads((built / "vocab.json").read_text())) == 49408


def _weights_digest(pipe) -> str:
    h = hashlib.sha256()
    for comp in (pipe.unet, pipe.vae, pipe.text_encoder):
        for name, tensor in sorted(comp.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.contiguous().numpy().tobytes())
    return h.hexdigest()


def test_tiny_model_is_reproducible_byte_for_byte(tmp_path):
    assert _weights_digest(build_tiny_pipeline()) == _weights_digest(build_tiny_pipeline())
    a = save_tiny_model(tmp_path / "a")
    b = save_tiny_model(tmp_path / "b")
    for part in ("unet", "vae", "text_encoder"):
        fa = next((a / part).glob("*.safetensors")).read_bytes()
        fb = next((b / part).glob("*.safetensors")).read_bytes()
        assert hashlib.sha256(fa).hexdigest() == hashlib.sha256(fb).hexdigest(), part


def test_tiny_model_generates_an_image(tiny_pipeline):
    import numpy as np
    import torch

    image = tiny_pipeline("a cat", height=64, width=64, num_inference_steps=2,
                          generator=torch.Generator().manual_seed(1)).images[0]
    assert image.size == (64, 64)
    assert np.asarray(image).std() > 0

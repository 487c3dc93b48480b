"""Engine fixtures: the real ModelManager over the tiny model, and small images and masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdui.engine.generate import Engine
from sdui.models.catalog import Catalog
from sdui.models.manager import ModelManager
from sdui.params import GenerationParams
from sdui.settings import Settings
from tests.conftest import torch_threads


@pytest.fixture(scope="session")
def manager(tiny_model_dir, tmp_path_factory) -> ModelManager:
    cache = tmp_path_factory.mktemp("engine-cache")
    # Plain fp32 (no bf16 fast path) so results compare exactly; test_generate checks the fast path separately.
    settings = Settings.for_data_dir(cache, ckpt_dir=tiny_model_dir, device="cpu", fast_path=False)
    return ModelManager(Catalog(tiny_model_dir, cache), settings)


@pytest.fixture(scope="session")
def engine(manager) -> Engine:
    return Engine(manager, preview_every=2)


def small(**changes) -> GenerationParams:
    """Fast params for the tiny model: 64x64, 3 steps, a fixed seed."""
    base = dict(prompt="a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=3, seed=1234)
    base.update(changes)
    return GenerationParams(**base)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


class LateCompletion:
    """A device → host copy that has not landed for its first `late` queries, like one behind a busy GPU."""

    def __init__(self, late: int) -> None:
        self.late, self.queries, self.waited = late, 0, False

    def query(self) -> bool:
        self.queries += 1
        return self.waited or self.queries > self.late

    def synchronize(self) -> None:
        self.waited = True


class LateCopy:
    """A PreviewTaker `to_host` whose copies all land late; keeps their completions for the test to inspect."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.completions: list[LateCompletion] = []

    def __call__(self, rgb):
        self.completions.append(LateCompletion(self.late))
        return rgb.clone(), self.completions[-1]


@pytest.fixture
def photo() -> Image.Image:
    """A 64x64 RGB test picture with structure (gradients and a square)."""
    ys, xs = np.mgrid[0:64, 0:64]
    rgb = np.stack([xs * 4, ys * 4, (xs + ys) * 2], -1).astype(np.uint8)
    rgb[20:40, 20:40] = (200, 30, 90)
    return Image.fromarray(rgb, "RGB")


@pytest.fixture
def center_mask() -> Image.Image:
    """White (repaint) 16x16 square in the middle of a 64x64 black mask."""
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    return Image.fromarray(mask, "L")


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One torch thread for the engine tests; package scope: the count is back before other tests run."""
    with torch_threads(1):
        yield


def build_tiny_sdxl():
    """A tiny random-weight SDXL pipeline: two CLIP encoders (32 + 32 wide) and a text_time UNet."""
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sdui.models.tiny import SD_SCHEDULER_CONFIG
    from sdui.models.tokenizer import load_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 64, 64, 64), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1,
                        norm_num_groups=32, sample_size=512, scaling_factor=0.13025)
    config = dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3,
                  max_position_embeddings=77, projection_dim=32, hidden_act="gelu", bos_token_id=49406,
                  eos_token_id=49407, pad_token_id=49407)
    text_encoder = CLIPTextModel(CLIPTextConfig(**config))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=load_tokenizer(),
        tokenizer_2=load_tokenizer("!"), unet=unet.eval(),
        scheduler=EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG))


@pytest.fixture(scope="session")
def sdxl_manager(tmp_path_factory) -> ModelManager:
    """The real ModelManager over a models dir holding only the tiny SDXL pipeline."""
    models = tmp_path_factory.mktemp("sdxl-models")
    build_tiny_sdxl().save_pretrained(models / "tiny-sdxl", safe_serialization=True)
    cache = tmp_path_factory.mktemp("sdxl-cache")
    return ModelManager(Catalog(models, cache), Settings.for_data_dir(cache, ckpt_dir=models, device="cpu",
                                                                      fast_path=False))

"""GenerationParams: the one description of a generation that the UI, the API and the engine share.

Built by field name at every entry point; `validate()` checks everything before any heavy work and
raises ValueError with a message naming the field, the rule and the value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from PIL import Image

from sdui.engine import samplers
from sdui.networks.tags import strip_tags


class Mode(str, Enum):
    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"


class MaskedContent(str, Enum):
    """What the masked area starts from (A1111's "Masked content"; API `inpainting_fill` 0-3)."""

    FILL = "fill"
    ORIGINAL = "original"
    LATENT_NOISE = "latent noise"
    LATENT_NOTHING = "latent nothing"


class ResizeMode(str, Enum):
    """How an init image is fitted to width x height (A1111's names; API `resize_mode` 0-2)."""

    JUST_RESIZE = "Just resize"
    CROP_AND_RESIZE = "Crop and resize"
    RESIZE_AND_FILL = "Resize and fill"


class OutpaintFill(str, Enum):
    """How the new canvas area is pre-filled before it is generated."""

    EDGE = "edge"
    BLUR = "blur"
    NOISE = "noise"


SIZE_MIN, SIZE_MAX = 64, 2048
STEPS_MAX = 150
BATCH_SIZE_MAX = 8
BATCH_COUNT_MAX = 100
SEED_MAX = 2**32 - 1
RNG_SOURCES = ("CPU", "GPU", "NV")
HIRES_SIZE_MAX = 4096  # the largest side a hires pass may produce
HIRES_SCALE_MAX = 8.0
LATENT_FACTOR = 8  # pixels per latent cell: hires sizes are floored to it, as A1111 does
# A1111's hires_fix_refiner_pass setting: in which pass of a hires job the refiner may take over.
HIRES_REFINER_PASSES = ("first pass", "second pass", "both passes")


@dataclass(frozen=True)
class HiresSize:
    """Where a hires pass upscales to (A1111's hr_upscale_to_x/y) and the size it produces after cropping."""

    upscale_width: int
    upscale_height: int
    crop_x: int = 0  # latent cells cut off (A1111's truncate_x/y) when both resize sides change the aspect ratio
    crop_y: int = 0

    @property
    def width(self) -> int:
        return (self.upscale_width // LATENT_FACTOR - self.crop_x) * LATENT_FACTOR

    @property
    def height(self) -> int:
        return (self.upscale_height // LATENT_FACTOR - self.crop_y) * LATENT_FACTOR


@dataclass
class GenerationParams:
    """Every knob of one generation request, with AUTOMATIC1111's defaults."""

    prompt: str = ""
    negative_prompt: str = ""
    checkpoint: str | None = None  # catalog title or name; None = the manager's default
    mode: Mode = Mode.TXT2IMG
    sampler: str = "Euler a"
    schedule: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    batch_size: int = 1
    batch_count: int = 1
    clip_skip: int = 1
    # A1111's randn_source: "CPU" (per-image CPU generators), "GPU" (drawn on the device; NVIDIA's numbers are
    # emulated where there is no CUDA device) or "NV" (NVIDIA's Philox generator emulated on any device).
    randn_source: str = "CPU"
    eta_noise_seed_delta: int = 0  # A1111's ENSD: ancestral samplers' step noise comes from seed + this
    # LoRAs and embeddings are named in the prompts themselves (`<lora:name:w>`, an embedding's file name).
    vae: str = "Automatic"  # A1111's sd_vae: "Automatic", "None" (the checkpoint's own) or a file in the VAE folder
    # name -> short hash, from a pasted infotext's `Lora hashes`: finds a LoRA renamed since the image was made
    lora_hashes: dict[str, str] = field(default_factory=dict)
    # img2img / inpaint / outpaint
    init_image: Image.Image | None = field(default=None, repr=False)
    resize_mode: ResizeMode = ResizeMode.JUST_RESIZE
    denoising_strength: float = 0.75
    # inpaint (white = repaint) and outpaint
    mask: Image.Image | None = field(default=None, repr=False)
    mask_blur: int = 4
    mask_invert: bool = False
    masked_content: MaskedContent = MaskedContent.ORIGINAL
    inpaint_full_res: bool = False  # "Only masked"
    inpaint_full_res_padding: int = 32
    outpaint_left: int = 0
    outpaint_right: int = 0
    outpaint_up: int = 0
    outpaint_down: int = 0
    outpaint_fill: OutpaintFill = OutpaintFill.EDGE
    # txt2img hires fix (A1111's "Hires. fix"): a second img2img pass at a larger size, `denoising_strength` above
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str = "Latent"  # a latent mode (engine.hires.LATENT_MODES) or an upscaler (None, Lanczos, a model)
    hr_second_pass_steps: int = 0  # 0 = as many as the first pass
    hr_resize_x: int = 0  # 0 and 0 = width/height × hr_scale; one of them = keep the aspect ratio
    hr_resize_y: int = 0
    hr_checkpoint: str = ""  # "" = the first pass's checkpoint
    hr_sampler: str = ""  # "" = the first pass's sampler
    hr_schedule: str = ""  # "" = the first pass's schedule type
    hr_prompt: str = ""  # "" = the first pass's prompt
    hr_negative_prompt: str = ""
    # A1111's refiner: another checkpoint takes over the denoising once `refiner_switch_at` of it is done
    refiner_checkpoint: str = ""  # catalog title or name; "" = no refiner
    refiner_switch_at: float = 0.8  # the completed ratio at which it takes over, 0 < x <= 1 (1 = never)
    refiner_switch_by_steps: bool = False  # A1111's refiner_switch_by_sample_steps: ratio of steps, not of noise
    hires_refiner_pass: str = "second pass"  # with hires fix: which pass may switch (HIRES_REFINER_PASSES)
    # A1111's use_old_scheduling option: prompt editing's `when` below 1 a fraction, else a step (and no hires timeline)
    use_old_scheduling: bool = False

    def __post_init__(self) -> None:
        # Accept the enums' string values from JSON / widgets.
        for name, enum in (("mode", Mode), ("masked_content", MaskedContent),
                           ("resize_mode", ResizeMode), ("outpaint_fill", OutpaintFill)):
            value = getattr(self, name)
            if not isinstance(value, enum):
                try:
                    setattr(self, name, enum(value))
                except ValueError:
                    allowed = ", ".join(repr(m.value) for m in enum)
                    raise ValueError(f"{name} must be one of {allowed}; got {value!r}") from None

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **changes)

    @property
    def hires(self) -> bool:
        """Whether this job runs a hires pass (txt2img with hires fix on)."""
        return self.enable_hr and self.mode is Mode.TXT2IMG

    @property
    def hires_steps(self) -> int:
        """Steps of the hires pass: A1111 runs exactly this many (0 in the field = as many as the first pass)."""
        return (self.hr_second_pass_steps or self.steps) if self.hires else 0

    def hires_size(self) -> HiresSize:
        """A1111's hires target: width/height × hr_scale, or Resize width/height to (one of them 0 = keep the
        aspect ratio; both = upscale to cover, then crop the middle)."""
        w, h, rx, ry = self.width, self.height, self.hr_resize_x, self.hr_resize_y
        if rx == 0 and ry == 0:
            return HiresSize(int(w * self.hr_scale), int(h * self.hr_scale))
        if ry == 0:
            return HiresSize(rx, rx * h // w)
        if rx == 0:
            return HiresSize(ry * w // h, ry)
        size = HiresSize(rx, rx * h // w) if w / h < rx / ry else HiresSize(ry * w // h, ry)
        return dataclasses.replace(size, crop_x=(size.upscale_width - rx) // LATENT_FACTOR,
                                   crop_y=(size.upscale_height - ry) // LATENT_FACTOR)

    @property
    def total_steps(self) -> int:
        """Denoising steps over the whole job, both passes of every batch: what progress counts to."""
        return (self.steps + self.hires_steps) * self.batch_count

    @property
    def outpaint_extents(self) -> tuple[int, int, int, int]:
        return (self.outpaint_left, self.outpaint_right, self.outpaint_up, self.outpaint_down)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field; return None when all is well."""
        _check_type(self)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value % 8 or not SIZE_MIN <= value <= SIZE_MAX:
                raise ValueError(f"{name} must be a multiple of 8 between {SIZE_MIN} and {SIZE_MAX}; got {value}")
        if not 1 <= self.steps <= STEPS_MAX:
            raise ValueError(f"steps must be between 1 and {STEPS_MAX}; got {self.steps}")
        if not 1.0 <= self.cfg_scale <= 30.0:
            raise ValueError(f"cfg_scale must be between 1 and 30; got {self.cfg_scale}")
        if not 1 <= self.batch_size <= BATCH_SIZE_MAX:
            raise ValueError(f"batch_size must be between 1 and {BATCH_SIZE_MAX}; got {self.batch_size}")
        if not 1 <= self.batch_count <= BATCH_COUNT_MAX:
            raise ValueError(f"batch_count must be between 1 and {BATCH_COUNT_MAX}; got {self.batch_count}")
        for name in ("seed", "subseed"):
            value = getattr(self, name)
            if not -1 <= value <= SEED_MAX:
                raise ValueError(f"{name} must be -1 (random) or between 0 and {SEED_MAX}; got {value}")
        if not 0.0 <= self.subseed_strength <= 1.0:
            raise ValueError(f"subseed_strength must be between 0 and 1; got {self.subseed_strength}")
        if not 1 <= self.clip_skip <= 12:
            raise ValueError(f"clip_skip must be between 1 and 12; got {self.clip_skip}")
        if self.randn_source not in RNG_SOURCES:
            raise ValueError(f"randn_source must be one of {', '.join(RNG_SOURCES)}; got {self.randn_source!r}")
        if not 0 <= self.eta_noise_seed_delta <= SEED_MAX:
            raise ValueError(f"eta_noise_seed_delta must be between 0 and {SEED_MAX}; got {self.eta_noise_seed_delta}")
        if not 0 <= self.inpaint_full_res_padding <= 256:
            raise ValueError(
                f"inpaint_full_res_padding must be between 0 and 256; got {self.inpaint_full_res_padding}")
        strip_tags(self.prompt, "prompt")
        strip_tags(self.negative_prompt, "negative_prompt")
        if not isinstance(self.vae, str) or not self.vae.strip():
            raise ValueError(f"vae must be 'Automatic', 'None' or a VAE file name; got {self.vae!r}")
        samplers.resolve(self.sampler, self.schedule)
        self._validate_refiner()
        if self.mode is Mode.TXT2IMG:
            if self.enable_hr:
                self._validate_hires()
            return
        if self.subseed_strength > 0:
            raise ValueError(f"subseed_strength (variation seed) works in txt2img only; got {self.subseed_strength} "
                             f"for {self.mode.value}: set it to 0")
        if self.init_image is None:
            raise ValueError(f"init_image is required for {self.mode.value}: upload an image first")
        if not 0.0 <= self.denoising_strength <= 1.0:
            raise ValueError(f"denoising_strength must be between 0 and 1; got {self.denoising_strength}")
        if int(self.steps * self.denoising_strength) < 1:  # diffusers runs int(steps × strength) of them
            raise ValueError(f"denoising_strength {self.denoising_strength:g} of {self.steps} steps leaves no step to "
                             "run: raise the steps or the denoising strength")
        if not 0 <= self.mask_blur <= 64:
            raise ValueError(f"mask_blur must be between 0 and 64; got {self.mask_blur}")
        if self.mode is Mode.INPAINT:
            if self.mask is None:
                raise ValueError("mask is required for inpaint: paint over the area to change")
        if self.mode is Mode.OUTPAINT:
            for side, value in zip(("left", "right", "up", "down"), self.outpaint_extents):
                if value < 0 or value % 8:
                    raise ValueError(f"outpaint_{side} must be a non-negative multiple of 8; got {value}")
            if not any(self.outpaint_extents):
                raise ValueError("outpaint needs at least one side to grow: set outpaint_left/right/up/down")
            # The engine fits the init image to width x height first, then grows that canvas.
            grown_w = self.width + self.outpaint_left + self.outpaint_right
            grown_h = self.height + self.outpaint_up + self.outpaint_down
            if grown_w > SIZE_MAX or grown_h > SIZE_MAX:
                raise ValueError(f"outpainted size must be at most {SIZE_MAX}x{SIZE_MAX}; got {grown_w}x{grown_h}")

    def _validate_refiner(self) -> None:
        if not isinstance(self.refiner_checkpoint, str):
            raise ValueError(f"refiner_checkpoint must be a checkpoint title or name ('' = no refiner); "
                             f"got {type(self.refiner_checkpoint).__name__}")
        if not 0.0 < self.refiner_switch_at <= 1.0:
            raise ValueError(f"refiner_switch_at must be above 0 and at most 1 (1 = never switch); "
                             f"got {self.refiner_switch_at}")
        if not isinstance(self.refiner_switch_by_steps, bool):
            raise ValueError(f"refiner_switch_by_steps must be true or false; got {self.refiner_switch_by_steps!r}")
        if not isinstance(self.use_old_scheduling, bool):
            raise ValueError(f"use_old_scheduling must be true or false; got {self.use_old_scheduling!r}")
        if self.hires_refiner_pass not in HIRES_REFINER_PASSES:
            raise ValueError(f"hires_refiner_pass must be one of {', '.join(map(repr, HIRES_REFINER_PASSES))}; "
                             f"got {self.hires_refiner_pass!r}")

    def _validate_hires(self) -> None:
        if not 0.0 <= self.denoising_strength <= 1.0:
            raise ValueError(f"denoising_strength must be between 0 and 1; got {self.denoising_strength}")
        if not 1.0 <= self.hr_scale <= HIRES_SCALE_MAX:
            raise ValueError(f"hr_scale must be between 1 and {HIRES_SCALE_MAX:g}; got {self.hr_scale}")
        for name in ("hr_resize_x", "hr_resize_y"):
            value = getattr(self, name)
            if value != 0 and not SIZE_MIN <= value <= HIRES_SIZE_MAX:
                raise ValueError(f"{name} must be 0 (from hr_scale) or between {SIZE_MIN} and {HIRES_SIZE_MAX}; "
                                 f"got {value}")
        if not 0 <= self.hr_second_pass_steps <= STEPS_MAX:
            raise ValueError(f"hr_second_pass_steps must be 0 (as many as steps) or at most {STEPS_MAX}; "
                             f"got {self.hr_second_pass_steps}")
        size = self.hires_size()
        if max(size.width, size.height) > HIRES_SIZE_MAX or min(size.width, size.height) < SIZE_MIN:
            raise ValueError(f"hr_scale: the hires pass would make {size.width}x{size.height} from "
                             f"{self.width}x{self.height}: each side must be between {SIZE_MIN} and {HIRES_SIZE_MAX}; "
                             "lower hr_scale or the resize sizes")
        for name in ("hr_upscaler", "hr_checkpoint", "hr_sampler", "hr_schedule", "hr_prompt", "hr_negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text; got {type(getattr(self, name)).__name__}")
        if not self.hr_upscaler.strip():
            raise ValueError("hr_upscaler must name a latent mode or an upscaler; got an empty name")
        samplers.resolve(self.hr_sampler or self.sampler, self.hr_schedule or self.schedule)
        strip_tags(self.hr_prompt, "hr_prompt")
        strip_tags(self.hr_negative_prompt, "hr_negative_prompt")


_INT_FIELDS = ("steps", "width", "height", "seed", "subseed", "batch_size", "batch_count", "clip_skip",
               "eta_noise_seed_delta", "mask_blur", "inpaint_full_res_padding", "outpaint_left", "outpaint_right",
               "outpaint_up", "outpaint_down", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y")
_FLOAT_FIELDS = ("cfg_scale", "subseed_strength", "denoising_strength", "hr_scale", "refiner_switch_at")


def _check_type(p: GenerationParams) -> None:
    for name in _INT_FIELDS:
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number; got {value!r}")
    for name in _FLOAT_FIELDS:
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"{name} must be a number; got {value!r}")
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(p, name), str):
            raise ValueError(f"{name} must be text; got {type(getattr(p, name)).__name__}")
    for name in ("init_image", "mask"):
        value = getattr(p, name)
        if value is not None and not isinstance(value, Image.Image):
            raise ValueError(f"{name} must be an image; got {type(value).__name__}")

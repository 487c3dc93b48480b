"""Pydantic request and response shapes of the /sdapi/v1 API, with AUTOMATIC1111's field names and defaults.

Every field an A1111 client sends is declared so it is accepted; which of them sdui honours, ignores or
refuses as "not supported yet" is decided in `convert.py`, not here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_FLOAT = {"allow_inf_nan": False}


class _Request(BaseModel):
    # A1111 ignores fields it does not know (clients of forks send extra ones); so does sdui.
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class ProcessingRequest(_Request):
    """The fields txt2img and img2img share (A1111's StableDiffusionProcessing, as its API exposes it)."""

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = Field(0.0, **_FLOAT)
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = Field(7.0, **_FLOAT)
    width: int = 512
    height: int = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = Field(0.75, **_FLOAT)
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = Field(None, **_FLOAT)
    disable_extra_networks: bool = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    sampler_index: str | None = "Euler"
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    force_task_id: str | None = None
    infotext: str | None = None


class Txt2ImgRequest(ProcessingRequest):
    """POST /sdapi/v1/txt2img (A1111's StableDiffusionProcessingTxt2Img)."""

    enable_hr: bool = False
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""


class Img2ImgRequest(ProcessingRequest):
    """POST /sdapi/v1/img2img (A1111's StableDiffusionProcessingImg2Img); a `mask` makes it inpaint."""

    init_images: list[str] | None = None
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int | None = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool = False


class ImageResponse(BaseModel):
    """TextToImageResponse / ImageToImageResponse: base64 PNGs, the request, and `info` as a JSON string."""

    images: list[str] | None = Field(default=None, description="The generated images as base64 PNG.")
    parameters: dict[str, Any]
    info: str


class PNGInfoRequest(_Request):
    image: str = Field(description="The base64 encoded image (a data: URL prefix is fine)")


class PNGInfoResponse(BaseModel):
    info: str = Field(description="The infotext the image carries ('' when none)")
    items: dict[str, Any] = Field(description="The image's other metadata entries")
    parameters: dict[str, Any] = Field(description="The infotext parsed into A1111 keys")


class ProgressResponse(BaseModel):
    progress: float = Field(description="0 to 1 over the caller's current job")
    eta_relative: float = Field(description="Seconds left, estimated")
    state: dict[str, Any]
    current_image: str | None = None
    textinfo: str | None = None


class SDModelItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class SDVaeItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_name: str
    filename: str


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class UpscalerItem(BaseModel):
    """One row of GET /sdapi/v1/upscalers (A1111's UpscalerItem)."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class MemoryResponse(BaseModel):
    ram: dict[str, Any]
    cuda: dict[str, Any]


class ScriptsList(BaseModel):
    txt2img: list[str] = Field(default_factory=list)
    img2img: list[str] = Field(default_factory=list)


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, Any] = Field(default_factory=dict)
    skipped: dict[str, Any] = Field(default_factory=dict)


class PromptStyleItem(BaseModel):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class ExtrasBaseRequest(_Request):
    """The fields both Extras routes share (A1111's ExtrasBaseRequest, same names, defaults and bounds)."""

    resize_mode: int = Field(0, ge=0, le=1, description="0: scale by upscaling_resize; 1: scale to "
                                                      "upscaling_resize_w x upscaling_resize_h")
    show_extras_results: bool = Field(True, description="Accepted for A1111 clients; the images always come back")
    gfpgan_visibility: float = Field(0, ge=0, le=1, description="Face restoration: not supported, must be 0",
                                     **_FLOAT)
    codeformer_visibility: float = Field(0, ge=0, le=1, description="Face restoration: not supported, must be 0",
                                         **_FLOAT)
    codeformer_weight: float = Field(0, ge=0, le=1, **_FLOAT)
    upscaling_resize: float = Field(2, gt=0, description="Scale by (resize_mode 0), at most 8", **_FLOAT)
    upscaling_resize_w: int = Field(512, ge=1, description="Target width (resize_mode 1), at most 8192")
    upscaling_resize_h: int = Field(512, ge=1, description="Target height (resize_mode 1), at most 8192")
    upscaling_crop: bool = Field(True, description="Crop to fit the target size (resize_mode 1)")
    upscaler_1: str = Field("None", description="Main upscaler, a name from /sdapi/v1/upscalers")
    upscaler_2: str = Field("None", description="Secondary upscaler, a name from /sdapi/v1/upscalers")
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1, description="How much of upscaler 2 to blend in",
                                                **_FLOAT)
    upscale_first: bool = Field(False, description="Accepted for A1111 clients (matters with face restoration only)")


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    """POST /sdapi/v1/extra-single-image."""

    image: str = Field("", description="The picture as base64 (a data: URL prefix is fine)")


class FileData(BaseModel):
    data: str = Field(description="The file as base64")
    name: str = Field(description="The file name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    """POST /sdapi/v1/extra-batch-images."""

    imageList: list[FileData] = Field(description="The pictures to work on")  # A1111's field name


class ExtrasSingleImageResponse(BaseModel):
    html_info: str = Field(description="The postprocessing text as HTML")
    image: str | None = Field(default=None, description="The result as base64 PNG")


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str = Field(description="The postprocessing text as HTML")
    images: list[str] = Field(description="The results as base64 PNG")

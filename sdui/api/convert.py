"""A1111 request fields -> GenerationParams (by field name), and a Result -> A1111's response shape.

Also the base64 image codec of the API. Refusals are ApiError naming the A1111 field and the reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from PIL import Image

import sdui
from sdui.api import script_args
from sdui.api.errors import ApiError
from sdui.api.models import ImageResponse, Img2ImgRequest, ProcessingRequest, Txt2ImgRequest
from sdui.engine import samplers
from sdui.engine.hires import LATENT_MODES, is_latent_mode
from sdui.engine.result import Result
from sdui.models.errors import ModelNotFound
from sdui.outputs.save import png_bytes
from sdui.outputs.paste import paste_infotext
from sdui.params import (HIRES_REFINER_PASSES, RNG_SOURCES, SEED_MAX, GenerationParams, MaskedContent, Mode,
                         ResizeMode)
from sdui.styles import StyleStore, apply_styles

# GenerationParams names -> the A1111 field a client sent, for error messages.
_API_NAMES = {"batch_count": "n_iter", "sampler": "sampler_name", "schedule": "scheduler",
              "init_image": "init_images", "mask_invert": "inpainting_mask_invert",
              "masked_content": "inpainting_fill", "clip_skip": "CLIP_stop_at_last_layers",
              "vae": "sd_vae", "refiner_switch_by_steps": "override_settings.refiner_switch_by_sample_steps",
              "hires_refiner_pass": "override_settings.hires_fix_refiner_pass"}
# The override_settings keys sdui applies; any other is named in the response's warnings.
OVERRIDE_SETTINGS = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "randn_source",
                     "eta_noise_seed_delta", "refiner_switch_by_sample_steps", "hires_fix_refiner_pass",
                     "use_old_scheduling")
DEFAULT_REFINER_SWITCH_AT = 0.8  # A1111's UI default, for a request with a refiner_checkpoint and no switch point
_FILLS = (MaskedContent.FILL, MaskedContent.ORIGINAL, MaskedContent.LATENT_NOISE, MaskedContent.LATENT_NOTHING)
_RESIZE_MODES = (ResizeMode.JUST_RESIZE, ResizeMode.CROP_AND_RESIZE, ResizeMode.RESIZE_AND_FILL)
# A1111's scheduler ids ("karras", "sgm_uniform") next to the labels ("Karras", "SGM Uniform").
SCHEDULER_IDS = {label.lower().replace(" ", "_"): label for label in samplers.SCHEDULES}
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


class CatalogLike(Protocol):
    def find(self, name_or_title: str) -> Any: ...


class UpscalersLike(Protocol):
    def check(self, name: str, field: str = "upscaler") -> None: ...


class VaeFolderLike(Protocol):
    def find(self, name: str) -> Any: ...

    def list(self) -> list[Any]: ...


def resolve_vae(name: Any, vaes: VaeFolderLike | None, field: str) -> str:
    """A1111's `sd_vae` value from a client: "Automatic", "None" or a VAE file name; 400/404 otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, f"{field} must be 'Automatic', 'None' or a name from /sdapi/v1/sd-vae; got {name!r}", field)
    name = name.strip()
    if name in ("Automatic", "None"):
        return name
    parts = name.replace("\\", "/").split("/")
    if ".." in parts or os.path.isabs(name) or re.match(r"^[A-Za-z]:", name):
        raise ApiError(400, f"{field} must be a VAE name from /sdapi/v1/sd-vae, not a path; got {name!r}", field)
    if vaes is None or vaes.find(name) is None:
        known = ", ".join(v.rel for v in (vaes.list() if vaes is not None else [])[:10]) or "none"
        raise ApiError(404, f"{field}: no VAE {name!r} in the VAE folder (known: Automatic, None, {known}); "
                            "see /sdapi/v1/sd-vae", field)
    return name


def decode_image(data: Any, field: str, max_bytes: int) -> Image.Image:
    """Decode a base64 image (a `data:` URL prefix is fine); ApiError 400/413 when it is not one."""
    if not isinstance(data, str) or not data.strip():
        raise ApiError(400, f"{field} must be a base64-encoded image; got {type(data).__name__} {data!r:.40}", field)
    text = data.strip()
    if text.lower().startswith(("http://", "https://")):
        raise ApiError(400, f"{field}: sdui does not fetch URLs; send the image itself as base64", field)
    text = "".join(_DATA_URL.sub("", text).split())
    if len(text) * 3 // 4 > max_bytes:
        raise ApiError(413, f"{field} is larger than the {max_bytes // 2**20} MB limit (--max-file-size-mb)", field)
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, f"{field} is not valid base64: {e}", field) from None
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ApiError(400, f"{field} is not an image Pillow can read ({len(raw)} bytes): {e}", field) from None
    return image


def encode_png(image: Image.Image, infotext: str | None) -> str:
    """Base64 PNG with the infotext in its `parameters` text chunk, as A1111 sends it."""
    return base64.b64encode(png_bytes(image, infotext)).decode("ascii")


def check_supported(req: ProcessingRequest) -> None:
    """Refuse (400) what a request asks for that sdui does not do yet; the defaults pass."""
    asked = []
    if not script_args.is_supported(req.script_name):
        asked.append(("script_name", f"scripts other than {', '.join(script_args.SCRIPTS)!r} ({req.script_name!r})"))
    if req.alwayson_scripts:
        asked.append(("alwayson_scripts", f"always-on scripts ({', '.join(map(str, req.alwayson_scripts))})"))
    if req.restore_faces:
        asked.append(("restore_faces", "face restoration"))
    if req.tiling:
        asked.append(("tiling", "tiling"))
    if req.firstpass_image:
        asked.append(("firstpass_image", "a first-pass image"))
    if (req.seed_resize_from_w or 0) > 0 or (req.seed_resize_from_h or 0) > 0:
        asked.append(("seed_resize_from_w", "seed resize"))
    if req.disable_extra_networks:
        asked.append(("disable_extra_networks", "leaving the prompt's <lora:...> tags unapplied"))
    if isinstance(req, Img2ImgRequest):
        if req.latent_mask:
            asked.append(("latent_mask", "a separate latent mask"))
        if req.initial_noise_multiplier not in (None, 1, 1.0):
            asked.append(("initial_noise_multiplier", "a noise multiplier other than 1"))
        if req.init_images and len(req.init_images) > 1:
            asked.append(("init_images", f"several init images ({len(req.init_images)}; send one)"))
    if asked:
        field, what = asked[0]
        raise ApiError(400, f"{field}: {what} is not supported yet by sdui", field)


def resolve_checkpoint(name: Any, catalog: CatalogLike, field: str) -> str:
    """A checkpoint name or title from the client -> the catalog's title; 400 for paths, 404 if unknown."""
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, f"{field} must be a checkpoint title or name from /sdapi/v1/sd-models; got {name!r}", field)
    name = name.strip()
    parts = name.split(" [")[0].replace("\\", "/").split("/")
    if ".." in parts or os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ApiError(400, f"{field} must be a checkpoint title or name from /sdapi/v1/sd-models, "
                            f"not a path outside the models dir; got {name!r}", field)
    try:
        return catalog.find(name).title
    except ModelNotFound as e:
        raise ApiError(404, f"{field}: no checkpoint {name!r} ({e}); see /sdapi/v1/sd-models", field) from None


def resolve_refiner(name: Any, catalog: CatalogLike) -> str:
    """A1111's refiner_checkpoint -> the catalog's title; None, "" or "None": no refiner; not installed: 400."""
    if name is None or (isinstance(name, str) and name.strip() in ("", "None")):
        return ""
    try:
        return resolve_checkpoint(name, catalog, "refiner_checkpoint")
    except ApiError as e:
        raise ApiError(400, e.detail, "refiner_checkpoint") from None


def _refiner(req: ProcessingRequest, catalog: CatalogLike, overrides: dict[str, Any]) -> dict[str, Any]:
    by_steps = overrides.get("refiner_switch_by_sample_steps", False)
    if not isinstance(by_steps, bool):
        raise ApiError(400, f"override_settings.refiner_switch_by_sample_steps must be true or false; got "
                            f"{by_steps!r}", "override_settings.refiner_switch_by_sample_steps")
    hires_pass = overrides.get("hires_fix_refiner_pass", "second pass")
    if hires_pass not in HIRES_REFINER_PASSES:
        raise ApiError(400, f"override_settings.hires_fix_refiner_pass must be one of "
                            f"{', '.join(HIRES_REFINER_PASSES)}; got {hires_pass!r}",
                       "override_settings.hires_fix_refiner_pass")
    switch_at = DEFAULT_REFINER_SWITCH_AT if req.refiner_switch_at is None else req.refiner_switch_at
    return dict(refiner_checkpoint=resolve_refiner(req.refiner_checkpoint, catalog), refiner_switch_at=switch_at,
                refiner_switch_by_steps=by_steps, hires_refiner_pass=hires_pass)


def _sampler(req: ProcessingRequest) -> tuple[str, str]:
    name = req.sampler_name or req.sampler_index or "Euler"
    schedule = req.scheduler or "Automatic"
    schedule = SCHEDULER_IDS.get(schedule.strip().lower(), schedule)
    try:
        spec, schedule = samplers.resolve(name, schedule)
    except ValueError as e:
        field = "sampler_name" if str(e).startswith("sampler") else "scheduler"
        raise ApiError(400, f"{field}: {e}", field) from None
    return spec.name, schedule


def check_randn_source(value: Any, field: str) -> str:
    if value not in RNG_SOURCES:
        raise ApiError(400, f"{field} must be one of {', '.join(RNG_SOURCES)}; got {value!r}", field)
    return value


def check_ensd(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise ApiError(400, f"{field} must be a whole number between 0 and {SEED_MAX}; got {value!r}", field)
    return value


# Request fields sdui does not apply -> the values that mean "as sdui does anyway" (anything else is warned).
_UNAPPLIED_FIELDS = {"eta": (None,), "s_churn": (None, 0), "s_tmin": (None, 0), "s_tmax": (None, 0, float("inf")),
                     "s_noise": (None, 1), "s_min_uncond": (None, 0), "image_cfg_scale": (None,),
                     "firstphase_width": (0,), "firstphase_height": (0,)}


def ignored_field_warnings(req: ProcessingRequest) -> list[str]:
    """One warning naming the request fields that ask for something sdui does not do (sampler eta/churn knobs,
    instruct-pix2pix's image CFG, the old first-phase hires size)."""
    asked = [f"{name}={getattr(req, name)!r}" for name, same in _UNAPPLIED_FIELDS.items()
             if hasattr(req, name) and getattr(req, name) not in same]
    if not asked:
        return []
    return [f"{', '.join(asked)}: not applied: sdui runs its samplers with their own settings "
            "(firstphase_width/height: set width/height and hr_resize_x/y)"]


def override_warnings(req: ProcessingRequest) -> list[str]:
    """One warning naming the override_settings keys sdui does not apply (A1111 would have)."""
    unknown = [key for key in (req.override_settings or {}) if key not in OVERRIDE_SETTINGS]
    if not unknown:
        return []
    return [f"override_settings: {', '.join(unknown)}: not applied: sdui applies only {', '.join(OVERRIDE_SETTINGS)}"]


def _common(req: ProcessingRequest, catalog: CatalogLike, defaults: dict[str, Any],
            vaes: VaeFolderLike | None) -> dict[str, Any]:
    overrides = req.override_settings or {}
    checkpoint, clip_skip, vae = defaults["checkpoint"], defaults["clip_skip"], defaults["vae"]
    if overrides.get("sd_model_checkpoint") is not None:
        checkpoint = resolve_checkpoint(overrides["sd_model_checkpoint"], catalog,
                                        "override_settings.sd_model_checkpoint")
    if overrides.get("CLIP_stop_at_last_layers") is not None:
        clip_skip = overrides["CLIP_stop_at_last_layers"]
    if overrides.get("sd_vae") is not None:
        vae = resolve_vae(overrides["sd_vae"], vaes, "override_settings.sd_vae")
    randn_source = check_randn_source(overrides.get("randn_source", defaults["randn_source"]),
                                      "override_settings.randn_source")
    ensd = check_ensd(overrides.get("eta_noise_seed_delta", defaults["eta_noise_seed_delta"]),
                      "override_settings.eta_noise_seed_delta")
    old_scheduling = overrides.get("use_old_scheduling", defaults["use_old_scheduling"])
    if not isinstance(old_scheduling, bool):
        raise ApiError(400, f"override_settings.use_old_scheduling must be true or false; got {old_scheduling!r}",
                       "override_settings.use_old_scheduling")
    sampler, schedule = _sampler(req)
    return dict(prompt=req.prompt or "", negative_prompt=req.negative_prompt or "", checkpoint=checkpoint,
                sampler=sampler, schedule=schedule, steps=req.steps, cfg_scale=req.cfg_scale, width=req.width,
                height=req.height, seed=req.seed, subseed=req.subseed, subseed_strength=req.subseed_strength,
                batch_size=req.batch_size, batch_count=req.n_iter, clip_skip=clip_skip, vae=vae,
                randn_source=randn_source, eta_noise_seed_delta=ensd, use_old_scheduling=old_scheduling,
                **_refiner(req, catalog, overrides))


# GenerationParams fields an infotext sets -> the request field (or override_settings key) that carries them.
_INFOTEXT_REQUEST_FIELDS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "steps": "steps", "sampler": "sampler_name",
    "schedule": "scheduler", "cfg_scale": "cfg_scale", "seed": "seed", "subseed": "subseed",
    "subseed_strength": "subseed_strength", "width": "width", "height": "height",
    "denoising_strength": "denoising_strength", "batch_size": "batch_size",
    "refiner_checkpoint": "refiner_checkpoint", "refiner_switch_at": "refiner_switch_at",
}
_INFOTEXT_TXT2IMG_FIELDS = {
    "enable_hr": "enable_hr", "hr_scale": "hr_scale", "hr_upscaler": "hr_upscaler",
    "hr_second_pass_steps": "hr_second_pass_steps", "hr_resize_x": "hr_resize_x", "hr_resize_y": "hr_resize_y",
    "hr_checkpoint": "hr_checkpoint_name", "hr_sampler": "hr_sampler_name", "hr_schedule": "hr_scheduler",
    "hr_prompt": "hr_prompt", "hr_negative_prompt": "hr_negative_prompt",
}
_INFOTEXT_IMG2IMG_FIELDS = {
    "mask_blur": "mask_blur", "inpaint_full_res": "inpaint_full_res",
    "inpaint_full_res_padding": "inpaint_full_res_padding", "masked_content": "inpainting_fill",
    "mask_invert": "inpainting_mask_invert",
}
_INFOTEXT_SETTINGS = {"checkpoint": "sd_model_checkpoint", "vae": "sd_vae", "clip_skip": "CLIP_stop_at_last_layers",
                      "randn_source": "randn_source", "eta_noise_seed_delta": "eta_noise_seed_delta",
                      "refiner_switch_by_steps": "refiner_switch_by_sample_steps",
                      "hires_refiner_pass": "hires_fix_refiner_pass", "use_old_scheduling": "use_old_scheduling"}


@dataclass
class RequestInfotext:
    """A request with its `infotext` applied (A1111 1.10): what the request did not set, the infotext filled."""

    request: ProcessingRequest
    warnings: list[str]
    lora_hashes: dict[str, str]


def apply_infotext(req: ProcessingRequest, *, catalog: CatalogLike, defaults: dict[str, Any],
                   upscalers: Any = None, networks: Any = None) -> RequestInfotext:
    """Fill the fields a client left unset from its `infotext`; the client's own fields and override_settings win.

    Keys the infotext has that sdui cannot apply, and models it names that are not installed, become warnings.
    """
    if not req.infotext:
        return RequestInfotext(req, [], {})
    mode = Mode.IMG2IMG if isinstance(req, Img2ImgRequest) else Mode.TXT2IMG
    if mode is Mode.IMG2IMG and req.mask:
        mode = Mode.INPAINT
    base = GenerationParams(mode=mode, checkpoint=defaults["checkpoint"], vae=defaults["vae"])
    try:
        pasted = paste_infotext(req.infotext, base, catalog=catalog, vaes=defaults["vaes"], upscalers=upscalers,
                                networks=networks)
    except ValueError as e:
        raise ApiError(400, f"infotext: {e}", "infotext") from None
    fields = dict(_INFOTEXT_REQUEST_FIELDS)
    fields.update(_INFOTEXT_IMG2IMG_FIELDS if mode is not Mode.TXT2IMG else _INFOTEXT_TXT2IMG_FIELDS)
    given = req.model_fields_set
    update = {}
    for name, api_name in fields.items():
        if name in pasted.fields and api_name not in given:
            update[api_name] = _request_value(name, getattr(pasted.params, name))
    overrides = dict(req.override_settings or {})
    for name, key in _INFOTEXT_SETTINGS.items():
        value = getattr(pasted.params, name)
        if name in pasted.fields and key not in overrides and value is not None:
            overrides[key] = value
    update["override_settings"] = overrides
    return RequestInfotext(req.model_copy(update=update), pasted.warnings, dict(pasted.params.lora_hashes))


def _request_value(name: str, value: Any) -> Any:
    if name == "masked_content":
        return _FILLS.index(value)
    if name == "mask_invert":
        return int(value)
    return value


def validate(params: GenerationParams) -> GenerationParams:
    """params.validate(), with the A1111 field name in the ApiError (400)."""
    try:
        params.validate()
    except ValueError as e:
        name, _, rest = str(e).partition(" ")
        name = name.rstrip(":")
        field = _API_NAMES.get(name, name)
        raise ApiError(400, f"{field} {rest}" if rest else str(e), field) from None
    return params


def with_styles(params: Any, names: list[str] | None, store: StyleStore) -> tuple[Any, list[str]]:
    """`params` with the request's `styles` merged into its prompts (hires prompts too, when set), and warnings
    about styles.csv rows that could not be read; 400 naming a style styles.csv does not have.

    For an X/Y/Z plot (a script's params with a `base`), its base gets the styles: every cell starts from it.
    """
    if not names:
        return params, []
    if isinstance(getattr(params, "base", None), GenerationParams):
        base, warnings = with_styles(params.base, names, store)
        return replace(params, base=base), warnings
    try:
        styles = store.find(names)
    except ValueError as e:
        raise ApiError(400, f"styles: {e}; see /sdapi/v1/prompt-styles", "styles") from None
    prompt, negative = apply_styles(params.prompt, params.negative_prompt, styles)
    # A hires prompt left empty is the first pass's (already styled); one of its own gets the styles too, as A1111.
    hr_prompt, hr_negative = apply_styles(params.hr_prompt, params.hr_negative_prompt, styles)
    changes = dict(prompt=prompt, negative_prompt=negative, hr_prompt=params.hr_prompt and hr_prompt,
                   hr_negative_prompt=params.hr_negative_prompt and hr_negative)
    return validate(replace(params, **changes)), store.problems()


def txt2img_params(req: Txt2ImgRequest, catalog: CatalogLike, *, upscalers: UpscalersLike | None = None,
                   lora_hashes: dict[str, str] | None = None, **defaults: Any) -> GenerationParams:
    """A validated txt2img GenerationParams from an A1111 txt2img request (hires fix included).

    `defaults`: the API's options (checkpoint, clip_skip, vae, randn_source, eta_noise_seed_delta) and `vaes`.
    """
    check_supported(req)
    fields = _common(req, catalog, _with_defaults(defaults), defaults.get("vaes"))
    fields["lora_hashes"] = dict(lora_hashes or {})
    if req.enable_hr:
        fields.update(_hires(req, catalog, upscalers), denoising_strength=req.denoising_strength)
    params = validate(GenerationParams(mode=Mode.TXT2IMG, **fields))
    return script_args.with_script(req.script_name, req.script_args, params)


def _with_defaults(given: dict[str, Any]) -> dict[str, Any]:
    defaults = {"checkpoint": None, "clip_skip": 1, "vae": "Automatic", "randn_source": "CPU",
                "eta_noise_seed_delta": 0, "use_old_scheduling": False}
    defaults.update({key: value for key, value in given.items() if key in defaults})
    return defaults


# What A1111's hires fields hold when they mean "as the first pass".
_SAME = {"hr_checkpoint_name": "Use same checkpoint", "hr_sampler_name": "Use same sampler",
         "hr_scheduler": "Use same scheduler"}


def _hires(req: Txt2ImgRequest, catalog: CatalogLike, upscalers: UpscalersLike | None) -> dict[str, Any]:
    def given(field: str) -> str:
        value = (getattr(req, field) or "").strip()
        return "" if value == _SAME.get(field) else value

    upscaler = (req.hr_upscaler or "Latent").strip()
    if not is_latent_mode(upscaler):
        try:
            if upscalers is None:
                raise ValueError(f"hr_upscaler: no upscaler {upscaler!r}; known: {', '.join(LATENT_MODES)}")
            upscalers.check(upscaler, "hr_upscaler")
        except ValueError as e:
            raise ApiError(400, f"{e}; see /sdapi/v1/upscalers and /sdapi/v1/latent-upscale-modes",
                           "hr_upscaler") from None
    checkpoint = given("hr_checkpoint_name")
    sampler, schedule = given("hr_sampler_name"), given("hr_scheduler")
    if sampler or schedule:
        try:
            spec, resolved = samplers.resolve(sampler or req.sampler_name or "Euler",
                                              SCHEDULER_IDS.get(schedule.lower(), schedule) or "Automatic")
        except ValueError as e:
            field = "hr_sampler_name" if str(e).startswith("sampler") else "hr_scheduler"
            raise ApiError(400, f"{field}: {e}", field) from None
        sampler, schedule = (spec.name if sampler else ""), (resolved if schedule else "")
    return dict(enable_hr=True, hr_scale=req.hr_scale, hr_upscaler=upscaler,
                hr_second_pass_steps=req.hr_second_pass_steps, hr_resize_x=req.hr_resize_x,
                hr_resize_y=req.hr_resize_y,
                hr_checkpoint=resolve_checkpoint(checkpoint, catalog, "hr_checkpoint_name") if checkpoint else "",
                hr_sampler=sampler, hr_schedule=schedule, hr_prompt=req.hr_prompt or "",
                hr_negative_prompt=req.hr_negative_prompt or "")


def _choice(value: int, options: tuple, field: str, names: str) -> Any:
    if isinstance(value, bool) or not 0 <= value < len(options):
        raise ApiError(400, f"{field} must be {names}; got {value!r}", field)
    return options[value]


def _mask_image(image: Image.Image) -> Image.Image:
    # A1111: an RGBA mask with real transparency means "alpha is the mask"; otherwise its brightness.
    if image.mode == "RGBA" and image.getextrema()[3] != (255, 255):
        return image.getchannel("A")
    return image.convert("L")


def img2img_params(req: Img2ImgRequest, catalog: CatalogLike, *, max_bytes: int = 50 * 2**20,
                   lora_hashes: dict[str, str] | None = None, **defaults: Any) -> GenerationParams:
    """A validated img2img (or, with `mask`, inpaint) GenerationParams from an A1111 img2img request."""
    check_supported(req)
    if not req.init_images:
        raise ApiError(400, "init_images must hold one base64 image for img2img; got none", "init_images")
    fields = _common(req, catalog, _with_defaults(defaults), defaults.get("vaes"))
    fields["lora_hashes"] = dict(lora_hashes or {})
    init = decode_image(req.init_images[0], "init_images[0]", max_bytes).convert("RGB")
    mask = None
    if req.mask:
        mask = _mask_image(decode_image(req.mask, "mask", max_bytes))
        if mask.size != init.size:
            mask = mask.resize(init.size, Image.Resampling.NEAREST)
    blur = req.mask_blur if req.mask_blur is not None else max(req.mask_blur_x, req.mask_blur_y)
    params = GenerationParams(
        mode=Mode.INPAINT if mask is not None else Mode.IMG2IMG, init_image=init, mask=mask,
        denoising_strength=0.75 if req.denoising_strength is None else req.denoising_strength,
        resize_mode=_choice(req.resize_mode, _RESIZE_MODES, "resize_mode",
                            "0 (just resize), 1 (crop and resize) or 2 (resize and fill)"),
        masked_content=_choice(req.inpainting_fill, _FILLS, "inpainting_fill",
                               "0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)"),
        mask_invert=bool(_choice(req.inpainting_mask_invert, (0, 1), "inpainting_mask_invert", "0 or 1")),
        mask_blur=blur, inpaint_full_res=req.inpaint_full_res,
        inpaint_full_res_padding=req.inpaint_full_res_padding, **fields)
    return script_args.with_script(req.script_name, req.script_args, validate(params))


def info_json(result: Result, job_timestamp: datetime, warnings: list[str] | None = None,
              styles: list[str] | None = None) -> str:
    """The `info` JSON string A1111 returns (Processed.js()), from what actually ran."""
    p = result.params
    n = len(result.images)
    seeds = result.seeds or [p.seed]
    subseeds = result.subseeds or [p.subseed]
    info = {
        "prompt": p.prompt, "all_prompts": [p.prompt] * n,
        "negative_prompt": p.negative_prompt, "all_negative_prompts": [p.negative_prompt] * n,
        "seed": seeds[0], "all_seeds": list(seeds), "subseed": subseeds[0], "all_subseeds": list(subseeds),
        "subseed_strength": p.subseed_strength, "width": p.width, "height": p.height,
        "sampler_name": p.sampler, "scheduler": p.schedule, "cfg_scale": p.cfg_scale, "steps": p.steps,
        "batch_size": p.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": result.model_name, "sd_model_hash": result.model_hash or None,
        "sd_vae_name": result.extra.get("VAE"), "sd_vae_hash": result.extra.get("VAE hash"),
        "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": p.denoising_strength if p.mode is not Mode.TXT2IMG else None,
        "extra_generation_params": {k: v for k, v in result.extra.items() if k not in ("VAE", "VAE hash")},
        "index_of_first_image": 0, "infotexts": list(result.infotexts),
        "styles": list(styles or []), "job_timestamp": job_timestamp.strftime("%Y%m%d%H%M%S"), "clip_skip": p.clip_skip,
        "is_using_inpainting_conditioning": False, "version": f"sdui {sdui.__version__}",
        "interrupted": result.interrupted, "warnings": [*(warnings or []), *result.warnings],
    }
    return json.dumps(info)


def build_response(req: ProcessingRequest, result: Result, job_timestamp: datetime,
                   warnings: list[str] | None = None) -> ImageResponse:
    """A1111's {"images", "parameters", "info"} for a finished job; `warnings` (the request's) lead info's own."""
    images = []
    if req.send_images:
        texts = list(result.infotexts) + [None] * (len(result.images) - len(result.infotexts))
        images = [encode_png(image, text) for image, text in zip(result.images, texts)]
    parameters = req.model_dump()
    if isinstance(req, Img2ImgRequest) and not req.include_init_images:
        parameters["init_images"] = None
        parameters["mask"] = None
    parameters.pop("include_init_images", None)
    info = info_json(result, job_timestamp, warnings, req.styles)
    return ImageResponse(images=images, parameters=parameters, info=info)

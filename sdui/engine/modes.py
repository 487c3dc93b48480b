"""Per-mode inputs and finishing: img2img fitting, inpaint masks and crop, outpaint canvas, paste-back.

`prepare_inputs` turns GenerationParams into what the diffusers pipeline gets (size, init image per
seed, mask); `ModeInputs.finish` turns a generated image into the result (pasted back where needed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from PIL import Image

from sdui.engine import masks
from sdui.engine.images import fit_image
from sdui.params import GenerationParams, MaskedContent, Mode


@dataclass
class ModeInputs:
    """What one run generates at and from, and how its images are finished."""

    mode: Mode
    width: int  # the size the pipeline generates at
    height: int
    image: Image.Image | None = None  # init image (img2img, inpaint crop) or canvas (outpaint)
    mask: Image.Image | None = None  # the mask the pipeline gets (blurred; 255 = repaint)
    binary_mask: Image.Image | None = None  # the unblurred mask, for masked-content pre-fill
    base: Image.Image | None = None  # what the result is pasted onto
    paste_mask: Image.Image | None = None
    box: masks.Box | None = None  # "only masked": where the generated crop goes in `base`
    masked_content: MaskedContent = MaskedContent.ORIGINAL
    _prefilled: Image.Image | None = field(default=None, repr=False)

    def init_for(self, seed: int) -> Image.Image | None:
        """The init image of the image with this seed (only the latent-noise pre-fill differs per seed)."""
        if self.mode is not Mode.INPAINT or self.image is None:
            return self.image
        if self.masked_content is MaskedContent.LATENT_NOISE:
            return masks.prefill(self.image, self.binary_mask, self.masked_content, seed)
        if self._prefilled is None:
            self._prefilled = masks.prefill(self.image, self.binary_mask, self.masked_content, seed)
        return self._prefilled

    def whole_picture_masked(self) -> ModeInputs:
        """These inputs for an inpainting model in txt2img/img2img, as A1111 runs it: a mask over everything, and
        in txt2img a mid-gray picture (what A1111 conditions on: a fully masked image is 0.5 gray)."""
        image = self.image if self.image is not None else Image.new("RGB", (self.width, self.height), (128,) * 3)
        mask = Image.new("L", (self.width, self.height), 255)
        return dataclasses.replace(self, image=image, mask=mask, binary_mask=mask)

    def finish(self, generated: Image.Image) -> Image.Image:
        """Paste the original back outside the mask (inpaint, outpaint); img2img/txt2img unchanged."""
        if self.base is None:
            return generated
        return masks.paste_back(self.base, generated, self.paste_mask, self.box)


def prepare_inputs(params: GenerationParams, seed: int) -> ModeInputs:
    """Build the pipeline inputs of `params` (validated); `seed` drives the outpaint noise fill."""
    w, h = params.width, params.height
    if params.mode is Mode.TXT2IMG:
        return ModeInputs(Mode.TXT2IMG, w, h)
    source = params.init_image.convert("RGB")
    if params.mode is Mode.IMG2IMG:
        return ModeInputs(Mode.IMG2IMG, w, h, image=fit_image(source, w, h, params.resize_mode))
    if params.mode is Mode.OUTPAINT:
        fitted = fit_image(source, w, h, params.resize_mode)
        refine = None
        if params.mask is not None:  # brush strokes over the original, in its own coordinates
            refine = masks.read_mask(params.mask, source.size, params.mask_invert)
            refine = fit_image(refine, w, h, params.resize_mode, Image.Resampling.NEAREST)
        canvas, generate_mask, paste_mask = masks.outpaint_canvas(
            fitted, params.outpaint_left, params.outpaint_right, params.outpaint_up, params.outpaint_down,
            params.outpaint_fill, params.mask_blur, seed, refine)
        return ModeInputs(Mode.OUTPAINT, canvas.width, canvas.height, image=canvas, mask=generate_mask,
                          binary_mask=generate_mask, base=canvas, paste_mask=paste_mask)
    return _prepare_inpaint(params, source)


def _prepare_inpaint(params: GenerationParams, source: Image.Image) -> ModeInputs:
    w, h = params.width, params.height
    mask = masks.read_mask(params.mask, source.size, params.mask_invert)
    masks.check_not_empty(mask)
    if params.inpaint_full_res:
        blurred = masks.blur_mask(mask, params.mask_blur)
        box = masks.crop_box(mask, params.inpaint_full_res_padding, (w, h))
        crop = source.crop(box).resize((w, h), Image.Resampling.LANCZOS)
        crop_mask = blurred.crop(box).resize((w, h), Image.Resampling.BILINEAR)
        crop_binary = mask.crop(box).resize((w, h), Image.Resampling.NEAREST)
        return ModeInputs(Mode.INPAINT, w, h, image=crop, mask=crop_mask, binary_mask=crop_binary,
                          base=source, paste_mask=blurred, box=box, masked_content=params.masked_content)
    fitted = fit_image(source, w, h, params.resize_mode)
    mask = fit_image(mask, w, h, params.resize_mode, Image.Resampling.NEAREST)
    masks.check_not_empty(mask)
    blurred = masks.blur_mask(mask, params.mask_blur)
    return ModeInputs(Mode.INPAINT, w, h, image=fitted, mask=blurred, binary_mask=mask, base=fitted,
                      paste_mask=blurred, masked_content=params.masked_content)

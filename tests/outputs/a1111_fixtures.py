"""Infotexts in the styles AUTOMATIC1111 (and its extensions) write, with the fields they must parse to."""

from __future__ import annotations

# (id, infotext, expected subset of parse_infotext's dict)
FIXTURES: list[tuple[str, str, dict]] = [
    (
        "simple-old",
        "a lighthouse on a cliff at dusk, oil painting\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b",
        {"Prompt": "a lighthouse on a cliff at dusk, oil painting", "Negative prompt": "blurry, lowres",
         "Steps": "20", "Sampler": "Euler a", "Schedule type": "Automatic", "CFG scale": "7",
         "Seed": "965400086", "Size-1": "512", "Size-2": "512", "Model hash": "45dee52b", "Clip skip": "1",
         "RNG": "GPU"},
    ),
    (
        "multi-line-prompt",
        "masterpiece, best quality,\n1girl, (red scarf:1.2), snow\nBREAK\nmountains in the background\n"
        "Negative prompt: worst quality, low quality,\nextra fingers\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3793887137, "
        "Size: 480x672, Model hash: 7f96a1a9ca, Model: anyMix_v3, Version: v1.10.1",
        {"Prompt": "masterpiece, best quality,\n1girl, (red scarf:1.2), snow\nBREAK\nmountains in the background",
         "Negative prompt": "worst quality, low quality,\nextra fingers", "Steps": "28", "Sampler": "DPM++ 2M",
         "Schedule type": "Karras", "CFG scale": "6.5", "Size-1": "480", "Size-2": "672", "Model": "anyMix_v3",
         "Version": "v1.10.1"},
    ),
    (
        "no-negative",
        "a red fox in tall grass\n"
        "Steps: 30, Sampler: Euler, Schedule type: Automatic, CFG scale: 7.0, Seed: 1010752383, Size: 512x768, "
        "Model hash: f47e942ad4, Model: realisticVision_v51, RNG: CPU, Version: v1.9.4",
        {"Prompt": "a red fox in tall grass", "Negative prompt": "", "Steps": "30", "Sampler": "Euler",
         "CFG scale": "7.0", "Seed": "1010752383", "Size-1": "512", "Size-2": "768", "RNG": "CPU"},
    ),
    (
        "quoted-lora-hashes",
        "portrait of a knight <lora:add_detail:0.6> <lora:more_details:0.3>\n"
        "Negative prompt: EasyNegative\n"
        'Steps: 25, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 5, Seed: 42, Size: 512x512, '
        'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, '
        'Lora hashes: "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef", '
        'TI hashes: "EasyNegative: c74b4e810b03", Version: v1.7.0',
        {"Sampler": "DPM++ SDE", "Schedule type": "Karras", "Seed": "42",
         "Lora hashes": "add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef",
         "TI hashes": "EasyNegative: c74b4e810b03", "Version": "v1.7.0"},
    ),
    (
        "hashes-json-and-unknown-keys",
        "1boy, white hair, wings\n"
        "Negative prompt: lowres\n"
        'Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 970527942, Size: 832x1216, '
        'Model hash: 238ffac319, Model: HellaineMixXL, VAE hash: 63aeecb90f, VAE: sdxl_vae.safetensors, '
        'Denoising strength: 0.35, Clip skip: 2, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, '
        'ADetailer version: 24.1.2, '
        'Hashes: {"model": "238ffac319", "embed:Hell4ineXLPOS": "23f5e3fc03", "vae": "63aeecb90f"}, '
        'Tiled Diffusion: {"Method": "MultiDiffusion", "Tile tile width": 96, "Tile Overlap": 48}, '
        'Hires upscale: 1.5, Hires upscaler: 4x-UltraSharp, Version: v1.8.0',
        {"Hashes": {"model": "238ffac319", "embed:Hell4ineXLPOS": "23f5e3fc03", "vae": "63aeecb90f"},
         "Tiled Diffusion": {"Method": "MultiDiffusion", "Tile tile width": 96, "Tile Overlap": 48},
         "ADetailer model": "face_yolov8n.pt", "ADetailer confidence": "0.3", "ADetailer version": "24.1.2",
         "Hires upscale": "1.5", "Hires upscaler": "4x-UltraSharp", "VAE": "sdxl_vae.safetensors",
         "VAE hash": "63aeecb90f", "Clip skip": "2", "Denoising strength": "0.35", "Size-1": "832",
         "Size-2": "1216"},
    ),
    (
        "old-combined-sampler",
        "a castle in the clouds\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, "
        "Model: v1-5-pruned-emaonly, Version: v1.6.0",
        {"Sampler": "DPM++ 2M", "Schedule type": "Karras", "Version": "v1.6.0"},
    ),
    (
        "inpaint",
        "a wooden door\n"
        "Negative prompt: text, watermark\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3001968073, Size: 768x512, "
        "Model hash: b513c6287d, Model: realism_engine, Denoising strength: 0.6, Mask blur: 8, "
        "Inpaint area: Only masked, Masked area padding: 48, Masked content: latent noise, "
        "Mask mode: Inpaint not masked, Version: v1.9.4",
        {"Denoising strength": "0.6", "Mask blur": "8", "Inpaint area": "Only masked",
         "Masked area padding": "48", "Masked content": "latent noise", "Mask mode": "Inpaint not masked",
         "Size-1": "768", "Size-2": "512"},
    ),
    (
        "img2img-sdxl",
        "cinematic photo of a city street at night, rain\n"
        "Negative prompt: cartoon\n"
        "Steps: 12, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 4.5, Seed: 1234567890, "
        "Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.75, "
        "Clip skip: 2, RNG: CPU, Version: v1.10.1",
        {"Sampler": "DPM++ 2M SDE", "Schedule type": "Exponential", "CFG scale": "4.5", "Clip skip": "2",
         "Denoising strength": "0.75", "Size-1": "1024", "Size-2": "1024", "Model": "sd_xl_base_1.0",
         "Mask blur": None, "Inpaint area": "Whole picture", "Masked content": "original"},
    ),
]

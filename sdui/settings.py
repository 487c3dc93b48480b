"""Command-line flags (AUTOMATIC1111's names where they exist) and the Settings they produce.

Parsing happens only when `parse_args` is called (by app.py or a test), never at import.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    """Everything the process was started with; passed down explicitly, never global."""

    listen: bool = False
    port: int = 7860
    share: bool = False
    insecure_share: bool = False
    gradio_auth: list[tuple[str, str]] = field(default_factory=list)
    api: bool = False
    api_auth: list[tuple[str, str]] = field(default_factory=list)
    # A1111's layout under --data-dir (see `data_layout`); each folder has its own flag.
    data_dir: Path = PROJECT_DIR
    ckpt_dir: Path = PROJECT_DIR / "models"
    lora_dir: Path = PROJECT_DIR / "models" / "Lora"
    lyco_dir: Path = PROJECT_DIR / "models" / "LyCORIS"
    vae_dir: Path = PROJECT_DIR / "models" / "VAE"
    embeddings_dir: Path = PROJECT_DIR / "embeddings"
    esrgan_dir: Path = PROJECT_DIR / "models" / "ESRGAN"
    realesrgan_dir: Path = PROJECT_DIR / "models" / "RealESRGAN"
    swinir_dir: Path = PROJECT_DIR / "models" / "SwinIR"
    dat_dir: Path = PROJECT_DIR / "models" / "DAT"
    outputs_dir: Path = PROJECT_DIR / "outputs"
    cache_dir: Path = PROJECT_DIR / "cache"
    save_format: str = "png"
    no_save: bool = False
    device: str | None = None
    no_half: bool = False
    no_half_vae: bool = False
    bf16: bool = False
    medvram: bool = False
    lowvram: bool = False
    models_in_memory: int = 1
    models_max_bytes: int | None = None
    download_default: bool = False
    compile: bool = False
    fast_path: bool = True
    max_file_size_mb: int = 50
    upscaler_tile: int = 192  # A1111's ESRGAN_tile / ESRGAN_tile_overlap (pixels; tile 0 = whole image at once)
    upscaler_tile_overlap: int = 8
    flags_given: frozenset[str] = frozenset()  # fields whose flag was on the command line: they win over config.json

    @property
    def server_name(self) -> str:
        return "0.0.0.0" if self.listen else "127.0.0.1"

    @classmethod
    def for_data_dir(cls, data_dir: Path, **fields) -> Settings:
        """Settings whose folders all sit in `data_dir` in A1111's layout; `fields` override any of them."""
        return cls(data_dir=Path(data_dir), **{**data_layout(Path(data_dir)), **fields})

    @property
    def network_dirs(self) -> list[Path]:
        """Folders of extra networks and VAEs: never scanned for checkpoints."""
        return [self.lora_dir, self.lyco_dir, self.vae_dir, self.embeddings_dir, *self.upscaler_dirs]

    @property
    def upscaler_dirs(self) -> list[Path]:
        """Folders of upscaler models (A1111's ESRGAN, RealESRGAN, SwinIR and DAT)."""
        return [self.esrgan_dir, self.realesrgan_dir, self.swinir_dir, self.dat_dir]


def data_layout(data_dir: Path) -> dict[str, Path]:
    """AUTOMATIC1111's folders under a data dir: what each path flag defaults to."""
    models = data_dir / "models"
    return {"ckpt_dir": models, "lora_dir": models / "Lora", "lyco_dir": models / "LyCORIS",
            "vae_dir": models / "VAE", "embeddings_dir": data_dir / "embeddings",
            "esrgan_dir": models / "ESRGAN", "realesrgan_dir": models / "RealESRGAN", "swinir_dir": models / "SwinIR",
            "dat_dir": models / "DAT",
            "outputs_dir": data_dir / "outputs", "cache_dir": data_dir / "cache"}


def parse_credentials(text: str) -> list[tuple[str, str]]:
    """Parse `user:pass[,user2:pass2]` (A1111's --gradio-auth format)."""
    pairs = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"credentials must look like user:password, got {item!r}")
        pairs.append((user, password))
    return pairs


# The folder flags (AUTOMATIC1111's names): flag, Settings field, what it holds. Defaults follow `data_layout`.
PATH_FLAGS = (
    ("--ckpt-dir", "ckpt_dir", "checkpoints, subfolders included, network folders excluded"),
    ("--lora-dir", "lora_dir", "LoRA/LyCORIS files"),
    ("--lyco-dir-backcompat", "lyco_dir", "more LoRA/LyCORIS files"),
    ("--vae-dir", "vae_dir", "VAE files and folders"),
    ("--embeddings-dir", "embeddings_dir", "textual-inversion embeddings"),
    ("--esrgan-models-path", "esrgan_dir", "ESRGAN-family upscaler models"),
    ("--realesrgan-models-path", "realesrgan_dir", "RealESRGAN upscaler models"),
    ("--swinir-models-path", "swinir_dir", "SwinIR upscaler models"),
    ("--dat-models-path", "dat_dir", "DAT upscaler models"),
    ("--outputs-dir", "outputs_dir", "generated images"),
    ("--cache-dir", "cache_dir", "hashes and compiled kernels"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="webui.sh", description="sdui, a Stable Diffusion web UI")
    net = p.add_argument_group("network")
    net.add_argument("--listen", action="store_true", help="serve on 0.0.0.0 instead of 127.0.0.1")
    net.add_argument("--port", type=int, default=7860)
    net.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    net.add_argument("--insecure-share", action="store_true", help="allow --share without a password")
    net.add_argument("--gradio-auth", "--auth", dest="gradio_auth", default=None,
                     help="user:pass[,user2:pass2] required to open the UI")
    net.add_argument("--gradio-auth-path", default=None, help="file with user:pass entries, one per line")
    net.add_argument("--api", action="store_true", help="serve the AUTOMATIC1111-compatible /sdapi/v1 API")
    net.add_argument("--api-auth", default=None, help="user:pass[,user2:pass2] for the API (HTTP Basic)")
    net.add_argument("--max-file-size-mb", type=int, default=50, help="largest upload accepted")
    paths = p.add_argument_group("paths (defaults follow --data-dir, in AUTOMATIC1111's layout)")
    paths.add_argument("--data-dir", type=Path, default=PROJECT_DIR,
                       help="base folder of models/, embeddings/, outputs/ and cache/ (default: the sdui folder)")
    example = data_layout(Path("<data-dir>"))
    for flag, name, what in PATH_FLAGS:
        paths.add_argument(flag, dest=name, type=Path, default=None, help=f"{what} (default: {example[name]})")
    paths.add_argument("--save-format", choices=["png", "jpg", "webp"], default="png")
    paths.add_argument("--no-save", action="store_true", help="keep images in memory only")
    hw = p.add_argument_group("device and memory")
    hw.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: best available)")
    hw.add_argument("--no-half", action="store_true", help="run in fp32")
    hw.add_argument("--no-half-vae", action="store_true", help="keep the VAE in fp32")
    hw.add_argument("--bf16", action="store_true", help="use bf16 instead of fp16 on CUDA")
    hw.add_argument("--medvram", action="store_true", help="offload whole models to the CPU between uses")
    hw.add_argument("--lowvram", action="store_true", help="offload layer by layer (slowest, least memory)")
    hw.add_argument("--models-in-memory", type=int, default=1, help="checkpoints kept loaded (LRU)")
    hw.add_argument("--models-max-gb", type=float, default=None, help="bytes bound of the model cache")
    hw.add_argument("--compile", action="store_true",
                    help="torch.compile the UNet and VAE decoder (kernels cached under the cache dir)")
    hw.add_argument("--upscaler-tile", type=int, default=192,
                    help="tile size in pixels for upscaler models (A1111's ESRGAN_tile; 0 = no tiling)")
    hw.add_argument("--upscaler-tile-overlap", type=int, default=8, help="overlap between upscaler tiles, pixels")
    hw.add_argument("--no-fast-path", action="store_true", help="plain diffusers: no bf16/channels_last tuning")
    p.add_argument("--download-default", action="store_true",
                   help="download the default real checkpoint when models/ has none (needs network)")
    p.add_argument("--exit", action="store_true", help="install and exit (handled by webui.sh)")
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    """Turn argv into Settings; raises SystemExit with argparse's message on bad flags."""
    parser = build_parser()
    a = parser.parse_args(argv)
    # argparse fills a default only where the namespace lacks the name: a second parse into a namespace of
    # markers shows which flags were actually given.
    unset = object()
    seen = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(vars(a), unset)))
    flags_given = frozenset(name for name, value in vars(seen).items() if value is not unset)
    try:
        gradio_auth = parse_credentials(a.gradio_auth) if a.gradio_auth else []
        if a.gradio_auth_path:
            gradio_auth += parse_credentials(Path(a.gradio_auth_path).read_text(encoding="utf-8"))
        api_auth = parse_credentials(a.api_auth) if a.api_auth else []
    except (ValueError, OSError) as e:
        parser.error(str(e))
    data_dir = a.data_dir.resolve()
    paths = {name: (getattr(a, name) or default).resolve() for name, default in data_layout(data_dir).items()}
    return Settings(
        listen=a.listen, port=a.port, share=a.share, insecure_share=a.insecure_share,
        gradio_auth=gradio_auth, api=a.api, api_auth=api_auth, data_dir=data_dir, **paths,
        save_format=a.save_format, no_save=a.no_save, device=a.device, no_half=a.no_half,
        no_half_vae=a.no_half_vae, bf16=a.bf16, medvram=a.medvram, lowvram=a.lowvram,
        models_in_memory=max(1, a.models_in_memory),
        models_max_bytes=int(a.models_max_gb * 2**30) if a.models_max_gb else None,
        download_default=a.download_default, compile=a.compile, fast_path=not a.no_fast_path,
        max_file_size_mb=a.max_file_size_mb, upscaler_tile=max(0, a.upscaler_tile),
        upscaler_tile_overlap=max(0, a.upscaler_tile_overlap), flags_given=flags_given,
    )

"""The settings a user changes and keeps: A1111's options (names, defaults, labels, sections, checks) and the store
that reads and writes them as `config.json` in the data dir (a flat JSON object, as A1111).

Command-line flags live in settings.py and win over the file; the UI's widget defaults live in ui/ui_config.py.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sdui.models.errors import ModelNotFound
from sdui.params import RNG_SOURCES, SEED_MAX
from sdui.settings import Settings

CONFIG_NAME = "config.json"
SAVE_FORMATS = ("png", "jpg", "webp")
# A1111's section ids and titles, in the order the Settings tab shows them.
SECTIONS = {"saving-images": "Saving images/grids", "saving-paths": "Paths for saving", "sd": "Stable Diffusion",
            "sd_vae": "VAE", "upscaling": "Upscaling", "sampler-params": "Sampler parameters",
            "ui": "Live previews", "compatibility": "Compatibility"}
PREVIEW_AT_END = 10**9  # show_progress_every_n_steps -1 or 0: a preview only when the image is done


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON to a temp file beside `path`, fsync it, then os.replace it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=4, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class OptionError(ValueError):
    """A value an option refuses; `.name` is the option's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class UnknownOption(OptionError):
    """A name that is not one of sdui's options."""


class FixedOption(OptionError):
    """An option a command-line flag fixes for this run."""


@dataclass(frozen=True)
class Option:
    """One option: its A1111 name, default, type and bounds, and the flag (Settings field) that can fix it."""

    name: str
    default: Any
    label: str
    section: str
    kind: type
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    flag: str | None = None  # the command-line flag that wins over the file
    field: str | None = None  # the Settings field that flag sets (its argparse dest)
    restart: bool = False  # read once when sdui starts
    info: str = ""

    def check(self, value: Any) -> Any:
        """`value` in this option's type; raises OptionError naming the option, the rule and the value."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise OptionError(self.name, f"{self.name} must be true or false; got {value!r}")
            return value
        if self.kind in (int, float):
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind is int and not whole):
                kind = "a whole number" if self.kind is int else "a number"
                raise OptionError(self.name, f"{self.name} must be {kind}; got {value!r}")
            value = self.kind(value)
            if (self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum):
                raise OptionError(self.name, f"{self.name} must be between {_num(self.minimum)} and "
                                             f"{_num(self.maximum)}; got {value!r}")
            return value
        if not isinstance(value, str):
            raise OptionError(self.name, f"{self.name} must be text; got {value!r}")
        if self.choices and value not in self.choices:
            raise OptionError(self.name, f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        return value


def _num(value: float | None) -> str:
    return f"{value:g}" if value is not None else "any"


def option_table(settings: Settings) -> dict[str, Option]:
    """sdui's options; the ones a flag can fix default to that flag's value (their folders under the outputs dir)."""
    out = Path(settings.outputs_dir)
    flag_out = {"flag": "--outputs-dir", "field": "outputs_dir"}
    options = [
        Option("samples_save", not settings.no_save, "Always save all generated images", "saving-images", bool,
               flag="--no-save", field="no_save"),
        Option("samples_format", settings.save_format, "File format for images", "saving-images", str,
               choices=SAVE_FORMATS, flag="--save-format", field="save_format"),
        Option("outdir_samples", "", "Output directory for images; if empty, defaults to three directories below",
               "saving-paths", str, **flag_out),
        Option("outdir_txt2img_samples", str(out / "txt2img-images"), "Output directory for txt2img images",
               "saving-paths", str, **flag_out),
        Option("outdir_img2img_samples", str(out / "img2img-images"), "Output directory for img2img images",
               "saving-paths", str, **flag_out),
        Option("outdir_extras_samples", str(out / "extras-images"), "Output directory for images from extras tab",
               "saving-paths", str, **flag_out),
        Option("outdir_txt2img_grids", str(out / "txt2img-grids"), "Output directory for txt2img grids",
               "saving-paths", str, **flag_out),
        Option("outdir_img2img_grids", str(out / "img2img-grids"), "Output directory for img2img grids",
               "saving-paths", str, **flag_out),
        Option("sd_model_checkpoint", "", "Stable Diffusion checkpoint", "sd", str,
               info="empty: the first checkpoint found"),
        Option("sd_checkpoints_limit", settings.models_in_memory,
               "Maximum number of checkpoints loaded at the same time", "sd", int, minimum=1, maximum=10, step=1,
               flag="--models-in-memory", field="models_in_memory", restart=True),
        Option("CLIP_stop_at_last_layers", 1, "Clip skip", "sd", int, minimum=1, maximum=12, step=1),
        Option("randn_source", "CPU", "Random number generator source.", "sd", str, choices=RNG_SOURCES,
               info="GPU: NVIDIA's numbers; CPU: the same on any machine"),
        Option("sd_vae", "Automatic", "SD VAE", "sd_vae", str),
        Option("ESRGAN_tile", settings.upscaler_tile, "Tile size for ESRGAN upscalers.", "upscaling", int,
               minimum=0, maximum=512, step=16, flag="--upscaler-tile", field="upscaler_tile", restart=True,
               info="0 = no tiling"),
        Option("ESRGAN_tile_overlap", settings.upscaler_tile_overlap, "Tile overlap for ESRGAN upscalers.",
               "upscaling", int, minimum=0, maximum=48, step=1, flag="--upscaler-tile-overlap",
               field="upscaler_tile_overlap", restart=True, info="Low values = visible seam"),
        Option("eta_noise_seed_delta", 0, "Eta noise seed delta", "sampler-params", int, minimum=0, maximum=SEED_MAX,
               step=1, info="does not improve anything, just produces different results; A1111's NAI value: 31337"),
        Option("show_progress_every_n_steps", 5, "Live preview display period", "ui", int, minimum=-1, maximum=32,
               step=1, info="in sampling steps - show a new live preview every N sampling steps; -1 (or 0) = only "
                            "show after completion of the image"),
        Option("use_old_scheduling", False, "Use old prompt editing timelines.", "compatibility", bool,
               info="For [red:green:N]; old: If N < 1, it's a fraction of steps (and hires fix uses range from 0 to "
                    "1), if N >= 1, it's an absolute number of steps; new: If N has a decimal point in it, it's a "
                    "fraction of steps (and hires fix uses range from 1 to 2), othewise it's an absolute number of "
                    "steps"),
    ]
    return {o.name: o for o in options}


class Options:
    """The option values of this run: flags, then config.json, then defaults. Thread-safe; saves atomically.

    `messages` holds what was wrong in the file when it was read (each naming its key); keys sdui does not know
    (A1111's other options) are kept and written back untouched.
    """

    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        self.settings = settings
        self.path = path
        self.table = option_table(settings)
        self.messages: list[str] = []
        self._values: dict[str, Any] = {}
        self._other: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        if path is not None:
            self._read(path)

    @classmethod
    def for_data_dir(cls, settings: Settings) -> Options:
        """The store kept in `<data dir>/config.json`."""
        return cls(settings, Path(settings.data_dir) / CONFIG_NAME)

    def _read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as e:
            self.messages.append(f"{path}: cannot be read ({e}); using the defaults")
            return
        try:
            data = json.loads(text)
        except ValueError as e:
            self.messages.append(f"{path}: not valid JSON ({e}); using the defaults (the file is rewritten on save)")
            return
        if not isinstance(data, dict):
            self.messages.append(f"{path}: must hold a JSON object of option names; using the defaults")
            return
        for name, value in data.items():
            option = self.table.get(name)
            if option is None:
                self._other[name] = value
                continue
            try:
                self._values[name] = option.check(value)
            except OptionError as e:
                self.messages.append(f"{CONFIG_NAME}: {e}; using the default {option.default!r}")

    def fixed_by(self, name: str) -> str | None:
        """The flag that fixes option `name` for this run, or None."""
        option = self.table[name]
        return option.flag if option.field in self.settings.flags_given else None

    def get(self, name: str) -> Any:
        """The value of option `name` now (a flag's when one fixes it)."""
        option = self.table[name]
        if self.fixed_by(name):
            return option.default  # defaults of flag-bound options come from the flags
        with self._lock:
            return self._values.get(name, option.default)

    def values(self) -> dict[str, Any]:
        """Every option sdui knows, with its value now."""
        return {name: self.get(name) for name in self.table}

    def check(self, changes: dict[str, Any]) -> dict[str, Any]:
        """`changes` checked (unknown names, flag-fixed options given another value, bad values raise)."""
        checked = {}
        for name, value in changes.items():
            option = self.table.get(name)
            if option is None:
                raise UnknownOption(name, f"{name} is not an option sdui knows (known: {', '.join(self.table)})")
            value = option.check(value)
            flag = self.fixed_by(name)
            if flag and value != self.get(name):
                raise FixedOption(name, f"option {name} is fixed by the command-line flag {flag}; "
                                        f"it is {self.get(name)!r}, got {value!r}")
            checked[name] = value
        return checked

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Check all of `changes`, then set and save them together; returns the ones whose value changed.

        Raises OptionError (nothing is changed then) or OSError when config.json cannot be written.
        """
        checked = self.check(changes)
        with self._lock:
            changed = {name: value for name, value in checked.items() if value != self.get(name)}
            if not changed:
                return {}
            before = dict(self._values)
            self._values.update(changed)
            try:
                self.save()
            except OSError:
                self._values = before
                raise
            listeners = list(self._listeners)
        for listener in listeners:
            listener(changed)
        return changed

    def save(self) -> None:
        """Write config.json atomically (temp file in the same folder, then os.replace); no-op without a path."""
        if self.path is None:
            return
        with self._lock:
            write_json_atomic(self.path, {**self._other, **self._values})

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(changed)` after each update that changed something."""
        with self._lock:
            self._listeners.append(listener)

    def reset(self, name: str, reason: str) -> None:
        """Forget a stored value found unusable after loading (e.g. a checkpoint no longer there), with a message."""
        with self._lock:
            self._values.pop(name, None)
        self.messages.append(f"{CONFIG_NAME}: {name}: {reason}; using the default {self.table[name].default!r}")

    def start_settings(self) -> Settings:
        """The Settings this run starts with: the options read once at start (and the save ones) applied."""
        return replace(self.settings, no_save=not self.get("samples_save"), save_format=self.get("samples_format"),
                       models_in_memory=self.get("sd_checkpoints_limit"), upscaler_tile=self.get("ESRGAN_tile"),
                       upscaler_tile_overlap=self.get("ESRGAN_tile_overlap"))

    def output_folders(self) -> dict[str, Path]:
        """Folder name (`txt2img-images`, ...) -> where those images go (relative paths: under the data dir)."""
        def folder(name: str) -> Path:
            path = Path(self.get(name)).expanduser()
            return path if path.is_absolute() else Path(self.settings.data_dir) / path

        common = self.get("outdir_samples").strip()
        images = {key: folder("outdir_samples") if common else folder(f"outdir_{mode}_samples")
                  for key, mode in (("txt2img-images", "txt2img"), ("img2img-images", "img2img"),
                                    ("extras-images", "extras"))}
        return {**images, "txt2img-grids": folder("outdir_txt2img_grids"),
                "img2img-grids": folder("outdir_img2img_grids")}

    def preview_every(self) -> int:
        """show_progress_every_n_steps as the Engine's period (-1 and 0: only the final image)."""
        steps = self.get("show_progress_every_n_steps")
        return steps if steps > 0 else PREVIEW_AT_END


def forget_missing_models(options: Options, catalog: Any, vaes: Any) -> None:
    """Drop a stored checkpoint or VAE that is not installed any more (`catalog.find` / `vaes.find`), saying so."""
    checkpoint = options.get("sd_model_checkpoint")
    if checkpoint and not options.fixed_by("sd_model_checkpoint"):
        try:
            catalog.find(checkpoint)
        except (ModelNotFound, ValueError) as e:
            options.reset("sd_model_checkpoint", f"no checkpoint {checkpoint!r} ({e})")
    vae = options.get("sd_vae")
    if vae not in ("Automatic", "None") and vaes.find(vae) is None:
        options.reset("sd_vae", f"no VAE {vae!r} in the VAE folder")


def apply_live(options: Options, writer: Any, engine: Any) -> None:
    """Give the OutputWriter and the Engine the options they follow without a restart."""
    writer.fmt = options.get("samples_format")
    writer.enabled = options.get("samples_save")
    writer.folders = options.output_folders()
    engine.preview_every = options.preview_every()

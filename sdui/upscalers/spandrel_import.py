"""Importing spandrel where no working torchvision is installed, with a stand-in that fails only when used.

spandrel imports `torchvision.transforms.functional` at import time for two architectures only: LaMa (inpainting:
`InterpolationMode`, `rotate`) and RestoreFormer (face restoration: `normalize`), neither of them an upscaler.
Where torchvision is missing, or cannot load beside the installed torch (a CUDA build next to a CPU torch fails
with "operator torchvision::nms does not exist"), `import spandrel` would fail for all architectures.

The choice: try the real torchvision first and use it when it imports. Otherwise drop whatever it left half
imported and put a stand-in `torchvision.transforms.functional` in `sys.modules` only while spandrel imports;
then take it out again. spandrel keeps the stand-in's names (calling them raises TorchvisionMissing, "this
architecture needs torchvision"), and no other library ever sees a fake torchvision: `import torchvision`
elsewhere fails as before, and a working torchvision is never shadowed. Nothing is patched in spandrel itself.
"""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from types import ModuleType

_lock = threading.Lock()
STAND_IN_FLAG = "__sdui_stand_in__"


class TorchvisionMissing(ImportError):
    """A spandrel architecture that needs torchvision was used where torchvision cannot be imported."""


class InterpolationMode(enum.Enum):
    """The names of torchvision's enum, so spandrel's defaults can refer to them."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def import_spandrel() -> ModuleType:
    """spandrel, imported once: with the real torchvision when it loads, else with the stand-in (see above)."""
    with _lock:
        if "spandrel" in sys.modules and hasattr(sys.modules["spandrel"], "ModelLoader"):
            return sys.modules["spandrel"]
        reason = torchvision_problem()
        if reason is None:
            return importlib.import_module("spandrel")
        _forget_torchvision()
        stand_ins = _stand_in_modules(reason)
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("spandrel")
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]


def torchvision_problem() -> str | None:
    """None when `torchvision.transforms.functional` imports; else why not."""
    existing = sys.modules.get("torchvision")
    if existing is not None and getattr(existing, STAND_IN_FLAG, False):
        return "torchvision is not installed"
    if existing is None and importlib.util.find_spec("torchvision") is None:
        return "torchvision is not installed"
    try:
        importlib.import_module("torchvision.transforms.functional")
    except (ImportError, RuntimeError, OSError) as e:
        return f"torchvision cannot be imported here ({type(e).__name__}: {e})"
    return None


def _forget_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def _needs_torchvision(name: str, reason: str):
    def missing(*args, **kwargs):
        raise TorchvisionMissing(f"this architecture needs torchvision (torchvision.transforms.functional.{name}), "
                                 f"but {reason}. Install the torchvision that matches your torch to use it.")
    missing.__name__ = name
    return missing


def _stand_in_modules(reason: str) -> dict[str, ModuleType]:
    modules = {}
    for name, is_package in (("torchvision", True), ("torchvision.transforms", True),
                             ("torchvision.transforms.functional", False)):
        module = types.ModuleType(name, "sdui's stand-in for a missing torchvision (see sdui/upscalers/spandrel_import)")
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=is_package)
        if is_package:
            module.__path__ = []
        setattr(module, STAND_IN_FLAG, True)
        modules[name] = module
    functional = modules["torchvision.transforms.functional"]
    functional.InterpolationMode = InterpolationMode
    for name in ("rotate", "normalize", "resize", "pad", "to_tensor", "to_pil_image"):
        setattr(functional, name, _needs_torchvision(name, reason))
    functional.__getattr__ = lambda name: _needs_torchvision(name, reason)
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    modules["torchvision.transforms"].functional = functional
    return modules

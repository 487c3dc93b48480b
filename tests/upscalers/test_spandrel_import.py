"""spandrel without torchvision: a stand-in that fails only when used, never seen by others, never over a real one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sdui.upscalers.spandrel_import import TorchvisionMissing, import_spandrel

REPO = Path(__file__).resolve().parents[2]
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


@pytest.mark.skipif(HAS_TORCHVISION, reason="a torchvision is installed: spandrel uses it")
def test_without_torchvision_spandrel_imports_and_the_stand_in_raises_only_when_called():
    spandrel = import_spandrel()
    assert spandrel.MAIN_REGISTRY.get("ESRGAN") is not None
    assert not [name for name in sys.modules if name.split(".")[0] == "torchvision"]  # no fake left for others
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401
    from spandrel.architectures.LaMa.__arch import LaMa
    from spandrel.architectures.RestoreFormer import tv_normalize

    assert LaMa.InterpolationMode.BILINEAR.value == "bilinear"  # names used as defaults resolve
    with pytest.raises(TorchvisionMissing, match="this architecture needs torchvision .*rotate"):
        LaMa.rotate(None, 0)
    with pytest.raises(TorchvisionMissing, match="normalize"):
        tv_normalize(None, [0.5], [0.5])
    assert import_spandrel() is spandrel


def run_with(tmp_path: Path, torchvision_init: str, check: str) -> None:
    """Run `check` after import_spandrel() in a fresh interpreter that finds a torchvision made of `torchvision_init`."""
    package = tmp_path / "site" / "torchvision"
    (package / "transforms").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(torchvision_init))
    (package / "loaded_ok.py").write_text("")
    (package / "transforms" / "__init__.py").write_text("")
    (package / "transforms" / "functional.py").write_text(
        "InterpolationMode = type('InterpolationMode', (), {'BILINEAR': 'bilinear'})\n"
        "def rotate(*args, **kwargs): return 'real rotate'\n"
        "def normalize(*args, **kwargs): return 'real normalize'\n")
    script = "import sys\nfrom sdui.upscalers.spandrel_import import import_spandrel\nimport_spandrel()\n" + check
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_working_torchvision_is_used_never_shadowed(tmp_path):
    run_with(tmp_path, "from torchvision import loaded_ok\n", textwrap.dedent("""
        import torchvision.transforms.functional as tvf
        from spandrel.architectures.LaMa.__arch import LaMa
        from spandrel.architectures.RestoreFormer import tv_normalize
        assert LaMa.rotate is tvf.rotate and LaMa.rotate() == "real rotate", LaMa.rotate
        assert tv_normalize() == "real normalize"
        assert not hasattr(sys.modules["torchvision"], "__sdui_stand_in__")
    """))


def test_a_torchvision_that_cannot_load_is_dropped_and_stood_in_for(tmp_path):
    # What a CUDA torchvision does beside a CPU torch: part of it imports, then an operator is missing.
    run_with(tmp_path, """
        from torchvision import loaded_ok
        raise RuntimeError("operator torchvision::nms does not exist")
    """, textwrap.dedent("""
        from spandrel.architectures.LaMa.__arch import LaMa
        assert not [name for name in sys.modules if name.split(".")[0] == "torchvision"], sorted(sys.modules)
        try:
            LaMa.rotate()
        except ImportError as e:
            assert "this architecture needs torchvision" in str(e) and "torchvision::nms" in str(e), e
        else:
            raise AssertionError("the stand-in did not raise")
    """))

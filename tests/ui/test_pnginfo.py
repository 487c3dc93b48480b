"""PNG info: which checkpoint an infotext's Model / Model hash points to."""

from __future__ import annotations

from types import SimpleNamespace

from sdui.models.catalog import Catalog
from sdui.ui.pnginfo import checkpoint_title


def test_checkpoint_title_falls_back_to_a_known_model_hash(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.safetensors").write_bytes(b"not really a model")
    catalog = Catalog(models, tmp_path / "cache")
    short = catalog.find("mine").short_hash  # computed once, as the first infotext would
    ctx = SimpleNamespace(catalog=catalog)

    assert checkpoint_title(ctx, "renamed-elsewhere", short) == f"mine.safetensors [{short}]"
    assert checkpoint_title(ctx, "renamed-elsewhere", "0123456789") is None
    assert checkpoint_title(ctx, None, None) is None

"""What a checkpoint's UNet predicts (epsilon or v, zero terminal SNR or not), and the evidence that told sdui.

Evidence, first match wins (the file name is the last resort, as it is the weakest):
  1. safetensors metadata: `modelspec.prediction_type` (v / v_prediction / epsilon / eps), kohya's
     `ss_v_parameterization` and `ss_zero_terminal_snr`;
  2. a sibling `<name>.yaml` (A1111's convention), parsed: `model.params.parameterization` ("v" or "eps");
  3. marker keys in the state dict: `v_pred` (v-prediction) and `ztsnr` (zero terminal SNR), as NoobAI-style
     SDXL v-prediction files carry them;
  4. SD2 only: A1111's test on the weights (`from_weights`): one UNet call on a constant input at timestep 999;
     a v-prediction UNet answers with about -x, an epsilon one with about x;
  5. SD2 only, when that test cannot decide (NaN): the file name ("768", "v-pred", "vpred", a lone "v");
  6. otherwise epsilon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

EPSILON, V = "epsilon", "v_prediction"
_V_NAME = re.compile(r"(768|v[-_]?pred|v[-_]?prediction|(?:^|[-_. ])v(?:$|[-_. ]))", re.IGNORECASE)
# A1111's threshold for (UNet(x, 999) - x).mean() (`is_using_v_parameterization_for_sd2`).
V_TEST_THRESHOLD = -1.0


@dataclass(frozen=True)
class Prediction:
    """The prediction type a checkpoint runs with and where sdui learnt it."""

    kind: str = EPSILON  # EPSILON or V
    zero_snr: bool = False  # betas rescaled to zero terminal SNR (trailing spacing)
    source: str = "default"  # the evidence, in words: "metadata modelspec.prediction_type", "weights test", ...

    @property
    def label(self) -> str:
        """The infotext value: "epsilon", "v" or "v zsnr"."""
        return ("v" if self.kind == V else "epsilon") + (" zsnr" if self.zero_snr else "")

    def scheduler_overrides(self) -> dict:
        """Scheduler config entries that make diffusers sample this prediction type."""
        overrides: dict = {"prediction_type": self.kind}
        if self.zero_snr:
            overrides.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
        return overrides


def from_evidence(metadata: Mapping[str, str], yaml_text: str | None, keys) -> Prediction | None:
    """Rules 1-3 of the module docstring; None when none of them applies."""
    zero_snr = str(metadata.get("ss_zero_terminal_snr", "")).lower() == "true" or "ztsnr" in keys
    declared = metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared:
        kind = V if declared.startswith("v") else EPSILON
        return Prediction(kind, zero_snr, "metadata modelspec.prediction_type")
    if str(metadata.get("ss_v_parameterization", "")).lower() == "true":
        return Prediction(V, zero_snr, "metadata ss_v_parameterization")
    parameterization = yaml_parameterization(yaml_text)
    if parameterization is not None:
        return Prediction(V if parameterization == "v" else EPSILON, zero_snr, "sibling .yaml")
    if "v_pred" in keys:
        return Prediction(V, zero_snr, "v_pred key" + (" and ztsnr key" if "ztsnr" in keys else ""))
    if zero_snr:
        return Prediction(EPSILON, True, "ztsnr key" if "ztsnr" in keys else "metadata ss_zero_terminal_snr")
    return None


def yaml_parameterization(yaml_text: str | None) -> str | None:
    """`model.params.parameterization` of an LDM config, or None (no yaml, unreadable, or not set)."""
    if not yaml_text:
        return None
    try:
        config = yaml.safe_load(yaml_text)
    except yaml.YAMLError:
        return None
    params = (config.get("model") or {}).get("params") if isinstance(config, dict) else None
    value = params.get("parameterization") if isinstance(params, dict) else None
    return str(value).strip().lower() if value is not None else None


def from_weights(unet) -> bool | None:
    """A1111's SD2 test: True for v-prediction, False for epsilon, None when the output is NaN (undecided)."""
    import torch

    param = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=param.device, dtype=param.dtype)
    with torch.inference_mode():
        out = unet(x, torch.tensor([999], device=param.device), encoder_hidden_states=context).sample
        score = (out.float() - x.float()).mean().item()
    if score != score:  # NaN: fp16 overflow or broken weights
        return None
    return score < V_TEST_THRESHOLD


def from_name(name: str) -> bool:
    """The last resort for SD2: a v-prediction name ("768", "v-pred", "vpred", "v_prediction", a lone "v")."""
    return bool(_V_NAME.search(Path(name).stem))

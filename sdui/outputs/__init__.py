"""Outputs: the A1111 infotext (write, parse, to params), saving images with it, and reading it back."""

from sdui.outputs.infotext import format_infotext, params_from_infotext, parse_infotext
from sdui.outputs.read import read_infotext
from sdui.outputs.save import OutputWriter, SaveError

__all__ = ["OutputWriter", "SaveError", "format_infotext", "params_from_infotext", "parse_infotext", "read_infotext"]

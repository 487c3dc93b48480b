"""The X/Y/Z plot's pictures: cells pasted into a grid, and A1111-style legends (labels on top and at the left).

Pillow only; what goes in the cells is decided in `xyz`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = "white"
TEXT_COLOR = (0, 0, 0)


def image_grid(images: Sequence[Image.Image], rows: int, margin: int = 0) -> Image.Image:
    """Paste `images` row by row into `rows` rows (A1111's image_grid), each slot as large as the largest image."""
    if not images:
        raise ValueError("a grid needs at least one image")
    cols = math.ceil(len(images) / rows)
    width, height = max(im.width for im in images), max(im.height for im in images)
    grid = Image.new("RGB", (cols * width + (cols - 1) * margin, rows * height + (rows - 1) * margin), BACKGROUND)
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % cols) * (width + margin), (i // cols) * (height + margin)))
    return grid


def annotate(grid: Image.Image, cell_width: int, cell_height: int, top: Sequence[str], left: Sequence[str],
             margin: int = 0) -> Image.Image:
    """The grid with a band of column labels on top and of row labels at the left, as A1111's
    draw_grid_annotations: the font grows with the cell size, long labels wrap to the cell's width."""
    font_size = max(8, (cell_width + cell_height) // 25)
    font = ImageFont.load_default(size=font_size)
    spacing = font_size // 2
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    top_lines = [_wrap(scratch, text, font, cell_width) for text in top]
    left_width = cell_width * 3 // 4 if any(left) else 0
    left_lines = [_wrap(scratch, text, font, left_width) for text in left]
    top_height = max((_block_height(scratch, lines, font, spacing) for lines in top_lines), default=0)
    pad_top = top_height + spacing * 2 if any(top) else 0
    result = Image.new("RGB", (grid.width + left_width, grid.height + pad_top), BACKGROUND)
    result.paste(grid, (left_width, pad_top))
    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(top_lines):
        center_x = left_width + col * (cell_width + margin) + cell_width / 2
        _draw_block(draw, lines, font, spacing, center_x, pad_top / 2)
    for row, lines in enumerate(left_lines):
        center_y = pad_top + row * (cell_height + margin) + cell_height / 2
        _draw_block(draw, lines, font, spacing, left_width / 2, center_y)
    return result


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in str(text).split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _block_height(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont, spacing: int) -> int:
    if not lines:
        return 0
    return sum(_line_height(draw, line, font) for line in lines) + spacing * (len(lines) - 1)


def _line_height(draw: ImageDraw.ImageDraw, line: str, font: ImageFont.FreeTypeFont) -> int:
    box = draw.textbbox((0, 0), line, font=font)
    return box[3] - box[1]


def _draw_block(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont, spacing: int,
                center_x: float, center_y: float) -> None:
    y = center_y - _block_height(draw, lines, font, spacing) / 2
    for line in lines:
        draw.text((center_x, y), line, font=font, fill=TEXT_COLOR, anchor="mt")
        y += _line_height(draw, line, font) + spacing

"""A1111's X/Y/Z plot: one request → a GenerationParams per cell, run as one job, and the labelled grid.

`PlotParams` is what the UI and the API build (axis types by A1111's labels, values as typed); `validate()` and
`check_names()` refuse bad values before any work; `run_plot` runs the cells through the Engine (the cells of one
checkpoint together) and draws the grids; `save_plot` saves every cell as a normal output and the grids under
`<mode>-grids/`. The axis types and their values live in `axes`, the value syntax in `ranges`, the drawing in
`grid`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from sdui.engine import noise
from sdui.engine.hires import is_latent_mode
from sdui.engine.result import Progress, Result
from sdui.models.errors import ModelError
from sdui.outputs.infotext import format_infotext
from sdui.params import SEED_MAX, GenerationParams, Mode
from sdui.scripts import grid as grid_draw
from sdui.scripts.axes import Axis, AxisInput, apply_value, axis_type, parse_axis
from sdui.scripts.ranges import expand_ints

if TYPE_CHECKING:
    from sdui.engine.generate import Engine
    from sdui.outputs.save import OutputWriter

TITLE = "X/Y/Z plot"
API_NAME = "x/y/z plot"  # A1111's script_name, matched case-insensitively
GRID_BASENAME = "xyz_grid"
MAX_CELLS = 1000
MAX_GRID_PIXELS = 200_000_000  # A1111's img_max_size_mp default (200 MP)
MARGIN_MAX = 500


@dataclass(frozen=True)
class Cell:
    """One generation of the plot: its place in the grid and its params."""

    ix: int
    iy: int
    iz: int
    params: GenerationParams


@dataclass
class PlotParams:
    """One X/Y/Z plot request (A1111's script_args by name); `base` is the tab's own GenerationParams."""

    base: GenerationParams
    x: AxisInput = field(default_factory=AxisInput)
    y: AxisInput = field(default_factory=AxisInput)
    z: AxisInput = field(default_factory=AxisInput)
    draw_legend: bool = True
    include_sub_images: bool = False  # A1111's include_lone_images: the cells follow the grid in the result
    include_sub_grids: bool = False
    keep_random_seeds: bool = False  # A1111's "Keep -1 for seeds": off = one seed for every cell
    vary_seeds: tuple[bool, bool, bool] = (False, False, False)  # seed + the cell's index along X, Y, Z
    margin_size: int = 0

    @property
    def tab(self) -> str:
        return "txt2img" if self.base.mode is Mode.TXT2IMG else "img2img"

    @property
    def mode(self) -> Mode:
        return self.base.mode

    @property
    def checkpoint(self) -> str | None:
        return self.base.checkpoint

    def axes(self) -> list[Axis]:
        """The three axes parsed (ValueError naming the axis for a bad type or value)."""
        return [parse_axis(name, self.tab, given, self.base)
                for name, given in (("X", self.x), ("Y", self.y), ("Z", self.z))]

    def cells(self) -> list[Cell]:
        """Every cell in grid order (X fastest, then Y, then Z), its axis values applied to `base`."""
        xs, ys, zs = self.axes()
        out = []
        for iz, z in enumerate(zs.values):
            for iy, y in enumerate(ys.values):
                for ix, x in enumerate(xs.values):
                    params = self.base
                    for axis, value in ((xs, x), (ys, y), (zs, z)):
                        params = apply_value(axis, value, params)
                    params = self._varied_seed(params, (ix, iy, iz), (len(xs.values), len(ys.values)))
                    out.append(Cell(ix, iy, iz, params))
        return out

    def _varied_seed(self, params: GenerationParams, index: tuple[int, int, int], dims: tuple[int, int]):
        if not any(self.vary_seeds) or params.seed == -1:
            return params
        xdim = dims[0] if self.vary_seeds[0] else 1
        ydim = dims[1] if self.vary_seeds[1] else 1
        offset = (index[0] * self.vary_seeds[0] + index[1] * xdim * self.vary_seeds[1]
                  + index[2] * xdim * ydim * self.vary_seeds[2])
        return params.replace(seed=(params.seed + offset) % (SEED_MAX + 1))

    @property
    def total_steps(self) -> int:
        """Denoising steps over every cell: what the job's progress counts to."""
        return sum(cell.params.total_steps for cell in self.cells())

    @property
    def batch_count(self) -> int:
        """The number of cells (the job reports which one is running)."""
        xs, ys, zs = self.axes()
        return len(xs.values) * len(ys.values) * len(zs.values)

    def validate(self) -> None:
        """Raise ValueError naming the axis (or the cell) that cannot run; before any work."""
        if not isinstance(self.base, GenerationParams):
            raise ValueError(f"the X/Y/Z plot needs the tab's generation params; got {type(self.base).__name__}")
        for name in ("draw_legend", "include_sub_images", "include_sub_grids", "keep_random_seeds"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if isinstance(self.margin_size, bool) or not isinstance(self.margin_size, int) \
                or not 0 <= self.margin_size <= MARGIN_MAX:
            raise ValueError(f"margin_size must be a whole number between 0 and {MARGIN_MAX}; got {self.margin_size!r}")
        self.base.validate()
        count = self.batch_count
        if count > MAX_CELLS:
            raise ValueError(f"the X/Y/Z plot would make {count} cells; at most {MAX_CELLS}")
        cells = self.cells()
        pixels = sum(c.params.width * c.params.height for c in cells)
        if pixels > MAX_GRID_PIXELS:
            raise ValueError(f"the X/Y/Z grid would be {pixels / 1e6:.0f} megapixels; at most "
                             f"{MAX_GRID_PIXELS // 1_000_000}: use fewer values or a smaller size")
        for cell in cells:
            try:
                cell.params.validate()
            except ValueError as e:
                raise ValueError(f"X/Y/Z plot cell {self.cell_label(cell)}: {e}") from None

    def cell_label(self, cell: Cell) -> str:
        parts = [axis.labels[i] for axis, i in zip(self.axes(), (cell.ix, cell.iy, cell.iz))
                 if axis.type.label != "Nothing"]
        return "(" + ", ".join(parts) + ")"

    def with_fixed_seeds(self) -> PlotParams:
        """The plot with its seeds resolved once (every cell the same seed), unless "Keep -1 for seeds"."""
        if self.keep_random_seeds:
            return self
        base = self.base.replace(seed=noise.resolve_seed(self.base.seed),
                                 subseed=noise.resolve_seed(self.base.subseed))
        fixed = {}
        for name in ("x", "y", "z"):
            given: AxisInput = getattr(self, name)
            if given.type.strip().lower() in ("seed", "var. seed"):
                values = [noise.resolve_seed(v) for v in expand_ints(given.values)]
                fixed[name] = dataclasses.replace(given, values=", ".join(map(str, values)))
        return dataclasses.replace(self, base=base, **fixed)


def check_names(plot: PlotParams, manager: Any) -> None:
    """ValueError naming the axis when a checkpoint, VAE or hires upscaler value is not installed."""
    for axis in plot.axes():
        kind = axis.type.choices
        for value in axis.values:
            try:
                if kind == "checkpoint" and value:
                    manager.catalog.find(value)
                elif kind == "vae" and value not in ("Automatic", "None") and manager.extras.vaes.find(value) is None:
                    raise ValueError(f"no VAE {value!r} in the VAE folder")
                elif kind == "upscaler" and not is_latent_mode(value):
                    manager.upscalers.check(value, "hires upscaler")
            except (ValueError, ModelError) as e:
                raise ValueError(f"X/Y/Z plot {axis.name} axis ({axis.type.label}): {e}") from None


@dataclass
class PlotResult(Result):
    """A plot's outcome shaped like one job's Result: `images` = the grid(s) first, then the cells when
    include_sub_images; `params` the first cell's. `grids` are saved under <mode>-grids, `cells` as outputs."""

    grids: list[Image.Image] = field(default_factory=list)
    grid_infotexts: list[str] = field(default_factory=list)
    shown_grids: int = 1  # how many of `grids` lead `images`
    cells: list[Result] = field(default_factory=list)  # in grid order; the cells that ran
    include_sub_images: bool = False


def run_order(plot: PlotParams, cells: list[Cell]) -> list[Cell]:
    """The cells in the order they run: the costliest axis outermost (A1111's cost order, Z before Y before X at
    equal cost), so the cells of one checkpoint (or VAE) run one after another."""
    axes = plot.axes()
    rank = sorted(range(3), key=lambda i: (-axes[i].type.cost, -i))
    return sorted(cells, key=lambda c: tuple((c.ix, c.iy, c.iz)[i] for i in rank))


def run_plot(engine: Engine, plot: PlotParams, progress: Callable[[Progress], None] | None = None,
             cancel: threading.Event | None = None) -> PlotResult:
    """Run every cell (one Engine.run each) and draw the grid(s); an interrupt returns the cells done so far."""
    # 1. Check, and fix the seeds once for the whole plot.
    plot.validate()
    plot = plot.with_fixed_seeds()
    cells = plot.cells()
    total = sum(c.params.total_steps for c in cells)
    done: dict[tuple[int, int, int], Result] = {}
    offset = 0
    # 2. The cells, checkpoint by checkpoint; progress counts over all of them.
    for number, cell in enumerate(run_order(plot, cells)):
        if cancel is not None and cancel.is_set():
            break

        def report(p: Progress, offset=offset, number=number) -> None:
            if progress is not None:
                progress(Progress(step=offset + p.step, total=total, preview=p.preview, batch_index=number,
                                  batch_count=len(cells)))

        result = engine.run(cell.params, progress=report, cancel=cancel)
        offset += cell.params.total_steps
        if result.images:
            done[(cell.ix, cell.iy, cell.iz)] = result
        if result.interrupted:
            break
    interrupted = len(done) < len(cells)
    # 3. The grids, with the first cell's parameters as their infotext.
    ordered = [done[(c.ix, c.iy, c.iz)] for c in cells if (c.ix, c.iy, c.iz) in done]
    if not ordered:
        return PlotResult(params=plot.base, interrupted=True, include_sub_images=plot.include_sub_images)
    return _assemble(plot, cells, done, ordered, interrupted)


def _assemble(plot: PlotParams, cells: list[Cell], done: dict, ordered: list[Result],
              interrupted: bool) -> PlotResult:
    xs, ys, zs = plot.axes()
    first = ordered[0]
    size = first.images[0].size
    sub_grids, infotexts = [], []
    for iz in range(len(zs.values)):
        slice_ = [c for c in cells if c.iz == iz]
        pictures = [done[(c.ix, c.iy, iz)].images[0] if (c.ix, c.iy, iz) in done else Image.new("RGB", size)
                    for c in slice_]
        grid = grid_draw.image_grid(pictures, rows=len(ys.values), margin=plot.margin_size)
        if plot.draw_legend:
            cell_w, cell_h = max(p.width for p in pictures), max(p.height for p in pictures)
            grid = grid_draw.annotate(grid, cell_w, cell_h, _legend(xs), _legend(ys), plot.margin_size)
        sub_grids.append(grid)
        first_of_slice = next((done[(c.ix, c.iy, iz)] for c in slice_ if (c.ix, c.iy, iz) in done), first)
        infotexts.append(grid_infotext(plot, first_of_slice))
    if len(sub_grids) > 1:
        z_grid = grid_draw.image_grid(sub_grids, rows=1)
        if plot.draw_legend:
            z_grid = grid_draw.annotate(z_grid, max(g.width for g in sub_grids), max(g.height for g in sub_grids),
                                        _legend(zs), [])
        grids, grid_texts = [z_grid, *sub_grids], [infotexts[0], *infotexts]
        shown = len(grids) if plot.include_sub_grids else 1
    else:
        grids, grid_texts, shown = sub_grids, infotexts, 1
    result = PlotResult(params=first.params, model_title=first.model_title, model_name=first.model_name,
                        model_hash=first.model_hash, extra=dict(first.extra), interrupted=interrupted,
                        grids=grids, grid_infotexts=grid_texts, shown_grids=shown, cells=ordered,
                        include_sub_images=plot.include_sub_images)
    result.warnings = list(dict.fromkeys(w for r in ordered for w in r.warnings))
    result.images = grids[:shown]
    result.infotexts = grid_texts[:shown]
    result.seeds = [first.seeds[0]] * shown
    result.subseeds = [first.subseeds[0]] * shown
    if plot.include_sub_images:
        for r in ordered:
            result.images += r.images
            result.infotexts += r.infotexts
            result.seeds += r.seeds
            result.subseeds += r.subseeds
    return result


def grid_infotext(plot: PlotParams, first: Result) -> str:
    """The first cell's infotext with A1111's `Script`, `X Type`, `X Values`, ... keys."""
    extra: dict[str, Any] = {**first.extra, "Script": TITLE}
    for name, given in (("X", plot.x), ("Y", plot.y), ("Z", plot.z)):
        if given.type.strip().lower() not in ("", "nothing"):
            extra[f"{name} Type"] = axis_type(plot.tab, given.type).label
            extra[f"{name} Values"] = given.values
    return format_infotext(first.params, seed=first.seeds[0], subseed=first.subseeds[0],
                           model_name=first.model_name, model_hash=first.model_hash, extra=extra)


def save_plot(writer: OutputWriter, result: PlotResult) -> list[Path]:
    """Save every cell as a normal output and the grids under `<mode>-grids/`; return the paths of what
    `result.images` shows, in its order (the other files are on disk too)."""
    grid_paths = [writer.save_grid(image, text, result.params.mode.value, GRID_BASENAME)
                  for image, text in zip(result.grids, result.grid_infotexts)]
    cell_paths = [path for cell in result.cells for path in writer.save(cell)]
    shown = [p for p in grid_paths[:result.shown_grids] if p is not None]
    return shown + (cell_paths if result.include_sub_images else [])


def _legend(axis: Axis) -> list[str]:
    return axis.labels if axis.type.label != "Nothing" else []


"""The X/Y/Z plot: axes parsed and refused before any work, cell order, and whole plots through the real job
queue on two tiny checkpoints (cells, grids, files, progress, checkpoint loads, interrupt)."""

from __future__ import annotations

import shutil
import threading
from datetime import date

import pytest

from sdui.engine.generate import Engine
from sdui.jobs import JobQueue, JobState
from sdui.models.catalog import Catalog
from sdui.models.manager import ModelManager
from sdui.models.tiny import DEMO_NAME
from sdui.outputs.infotext import parse_infotext
from sdui.outputs.read import read_infotext
from sdui.outputs.save import OutputWriter
from sdui.params import GenerationParams, Mode
from sdui.scripts.axes import AxisInput, axis_type, axis_types
from sdui.scripts.xyz import PlotParams, PlotResult, run_order, run_plot
from sdui.settings import Settings
from tests.conftest import torch_threads

SECOND = "tiny-second"


def base(**changes) -> GenerationParams:
    fields = dict(prompt="a photo of a cat", negative_prompt="blurry", width=64, height=64, steps=1, seed=1234,
                  sampler="Euler")
    fields.update(changes)
    return GenerationParams(**fields)


def plot(x=("Nothing", ""), y=("Nothing", ""), z=("Nothing", ""), **changes) -> PlotParams:
    params = changes.pop("base", None) or base()
    return PlotParams(base=params, x=AxisInput(*x), y=AxisInput(*y), z=AxisInput(*z), **changes)


# Axes: A1111's list and indices, values parsed, bad ones refused naming the axis.

def test_axis_indices_are_a1111s():
    txt2img, img2img = axis_types("txt2img"), axis_types("img2img")
    assert [a.label for a in txt2img[:7]] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps",
                                             "Hires steps", "CFG Scale"]
    assert txt2img[7].label == "Prompt S/R" and img2img[6].label == "Image CFG Scale"
    assert axis_type("txt2img", 4).label == "Steps" and axis_type("txt2img", "cfg scale").label == "CFG Scale"
    assert "Hires steps" not in [a.label for a in img2img]
    assert txt2img[-1].label == "Size"


def test_cells_apply_values_in_grid_order():
    cells = plot(("Steps", "1-2"), ("CFG Scale", "3, 7")).cells()
    assert [(c.ix, c.iy, c.params.steps, c.params.cfg_scale) for c in cells] == [
        (0, 0, 1, 3.0), (1, 0, 2, 3.0), (0, 1, 1, 7.0), (1, 1, 2, 7.0)]


def test_prompt_sr_replaces_in_both_prompts():
    p = plot(("Prompt S/R", "cat, dog"), base=base(prompt="a cat", negative_prompt="no cat"))
    assert [(c.params.prompt, c.params.negative_prompt) for c in p.cells()] == [("a cat", "no cat"),
                                                                               ("a dog", "no dog")]


def test_size_sampler_schedule_and_seeds():
    p = plot(("Size", "64x128, 96"), ("Schedule type", "karras, Automatic"), ("Seed", "-1, 5"),
             base=base(seed=-1))
    cells = p.cells()
    assert {(c.params.width, c.params.height) for c in cells} == {(64, 128), (96, 96)}
    assert {c.params.schedule for c in cells} == {"Karras", "Automatic"}
    fixed = p.with_fixed_seeds().cells()
    seeds = {c.params.seed for c in fixed if c.iz == 0}
    assert len(seeds) == 1 and -1 not in seeds  # the -1 value: one random seed for its cells
    assert {c.params.seed for c in fixed if c.iz == 1} == {5}
    assert {c.params.seed for c in plot(("Steps", "1-2"), base=base(seed=-1)).with_fixed_seeds().cells()} != {-1}
    assert len({c.params.seed for c in plot(("Steps", "1-2"), base=base(seed=-1)).with_fixed_seeds().cells()}) == 1


def test_vary_seeds_along_x():
    p = plot(("Steps", "1-3"), vary_seeds=(True, False, False))
    assert [c.params.seed for c in p.cells()] == [1234, 1235, 1236]


@pytest.mark.parametrize("axes, message", [
    ({"x": ("Sampler", "Euler, Nope")}, r"X axis \(Sampler\): sampler must be one of .*got 'Nope'"),
    ({"y": ("Steps", "1-5 (-1)")}, r"Y axis \(Steps\): range '1-5 \(-1\)'"),
    ({"z": ("CFG Scale", "seven")}, r"Z axis \(CFG Scale\): 'seven' is not a number"),
    ({"x": ("Prompt S/R", "horse, dog")}, r"X axis \(Prompt S/R\): did not find 'horse'"),
    ({"x": ("Eta", "0, 1")}, r"X axis: 'Eta' is not supported by sdui yet"),
    ({"x": ("Wobble", "1")}, r"X axis: axis type 'Wobble' is not one of txt2img's"),
    ({"x": ("Steps", "")}, r"X axis \(Steps\): no values"),
    ({"x": ("Steps", "1, 500")}, r"cell \(Steps: 500\): steps must be between 1 and 150; got 500"),
    ({"x": ("Schedule type", "Sideways")}, r"X axis \(Schedule type\): unknown schedule type 'Sideways'"),
    ({"x": ("Size", "64 by 64")}, r"X axis \(Size\): '64 by 64' is not a size"),
])
def test_bad_axes_are_refused_naming_the_axis(axes, message):
    with pytest.raises(ValueError, match=message):
        plot(**axes).validate()


def test_hires_axes_are_txt2img_only():
    with pytest.raises(ValueError, match="'Hires steps' is not one of img2img's"):
        plot(("Hires steps", "1, 2"), base=base(mode=Mode.IMG2IMG)).axes()


def test_costly_axes_run_outermost():
    p = plot(("Checkpoint name", f"{DEMO_NAME}, {SECOND}"), ("Steps", "1-3"))
    ran = [c.params.checkpoint for c in run_order(p, p.cells())]
    assert ran == [DEMO_NAME] * 3 + [SECOND] * 3
    p = plot(("Steps", "1-2"), ("Seed", "1, 2"))  # equal costs: as A1111, Z then Y outermost, X innermost
    assert [(c.ix, c.iy) for c in run_order(p, p.cells())] == [(0, 0), (1, 0), (0, 1), (1, 1)]


# Whole plots on the real engine.

@pytest.fixture(scope="module")
def models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("xyz-models")
    shutil.copytree(tiny_model_dir / DEMO_NAME, root / DEMO_NAME)
    shutil.copytree(tiny_model_dir / DEMO_NAME, root / SECOND)
    return root


def make_queue(models, root) -> JobQueue:
    settings = Settings.for_data_dir(root / "cache", ckpt_dir=models, device="cpu", fast_path=False,
                                     models_in_memory=1)
    manager = ModelManager(Catalog(models, root / "cache"), settings)
    return JobQueue(Engine(manager), OutputWriter(root / "outputs"))


@pytest.fixture(scope="module")
def queue(models, tmp_path_factory):
    q = make_queue(models, tmp_path_factory.mktemp("xyz-run"))
    q.start()
    with torch_threads(1):
        yield q
    q.stop()


def test_steps_by_cfg_plot(queue):
    seen = []
    request = plot(("Steps", "1-2"), ("CFG Scale", "3, 7"), include_sub_images=True)
    job = queue.submit(request)
    while not job.done:
        seen.append(job.progress().step)
        job._done.wait(0.01)
    result = job.wait()
    assert isinstance(result, PlotResult) and job.state is JobState.DONE
    assert job.progress().total == 1 + 2 + 1 + 2 and job.progress().step == 6
    assert seen == sorted(seen)
    grid, cells = result.images[0], result.images[1:]
    assert len(cells) == 4 and all(c.size == (64, 64) for c in cells)
    assert grid.width > 128 and grid.height > 128  # two cells each way, plus the legend
    infos = [parse_infotext(text) for text in result.infotexts[1:]]
    assert [(i["Steps"], i["CFG scale"]) for i in infos] == [("1", "3"), ("2", "3"), ("1", "7"), ("2", "7")]
    assert {i["Seed"] for i in infos} == {"1234"}
    grids = sorted((queue.writer.root / "txt2img-grids" / date.today().isoformat()).iterdir())
    assert [p.name for p in grids] == ["xyz_grid-0000.png"]
    assert job.saved_paths[0] == grids[0]
    saved_grid = parse_infotext(read_infotext(grids[0]))
    assert saved_grid["Steps"] == "1" and saved_grid["CFG scale"] == "3" and saved_grid["Script"] == "X/Y/Z plot"
    assert saved_grid["X Type"] == "Steps" and saved_grid["X Values"] == "1-2"
    cell_files = [p for p in job.saved_paths[1:]]
    assert len(cell_files) == 4 and all(p.parent.parent.name == "txt2img-images" for p in cell_files)
    assert [parse_infotext(read_infotext(p))["Steps"] for p in cell_files] == ["1", "2", "1", "2"]


def test_grid_without_legend_is_the_cells_and_never_overwrites(queue):
    result = queue.submit(plot(("Steps", "1-2"), ("Seed", "1, 2"), draw_legend=False)).wait()
    assert len(result.images) == 1 and result.images[0].size == (128, 128)
    assert result.images[0].crop((64, 64, 128, 128)).tobytes() == result.cells[3].images[0].tobytes()
    names = sorted(p.name for p in (queue.writer.root / "txt2img-grids" / date.today().isoformat()).iterdir())
    assert "xyz_grid-0001.png" in names


def test_z_axis_makes_a_grid_per_value(queue):
    result = queue.submit(plot(("Steps", "1"), ("Seed", "1"), ("CFG Scale", "3, 7"), draw_legend=False,
                               include_sub_grids=True), save=False).wait()
    assert len(result.grids) == 3 and [g.size for g in result.images] == [(128, 64), (64, 64), (64, 64)]


def test_each_checkpoint_loads_once(models, tmp_path):
    q = make_queue(models, tmp_path)
    q.start()
    try:
        manager = q.engine.manager
        before = manager.load_count
        with torch_threads(1):
            result = q.submit(plot(("Checkpoint name", f"{DEMO_NAME}, {SECOND}"), ("Steps", "1-2")),
                              save=False).wait()
        assert manager.load_count - before == 2  # X outermost; the default order (Y outer) would load 4 times
        assert [(c.model_name, c.params.steps) for c in result.cells] == [  # the grid keeps the axis order
            (DEMO_NAME, 1), (SECOND, 1), (DEMO_NAME, 2), (SECOND, 2)]
    finally:
        q.stop()


def test_unknown_checkpoint_refused_at_submit(queue):
    with pytest.raises(ValueError, match=r"X/Y/Z plot X axis \(Checkpoint name\): .*nope"):
        queue.submit(plot(("Checkpoint name", f"{DEMO_NAME}, nope")))


def test_interrupt_returns_the_cells_done(queue):
    cancel = threading.Event()

    def progress(p):
        if p.step >= 2:
            cancel.set()

    result = run_plot(queue.engine, plot(("Steps", "2, 2, 2"), draw_legend=False), progress=progress, cancel=cancel)
    assert result.interrupted and len(result.cells) == 1
    assert result.images[0].size == (192, 64)  # the cells not run stay black in the grid
    assert result.images[0].crop((64, 0, 192, 64)).getbbox() is None

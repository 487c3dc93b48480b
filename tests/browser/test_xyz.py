"""The X/Y/Z plot in real Chromium: Script → X/Y/Z plot, 📒 fills an axis's choices, Steps × CFG Scale, Generate →
the grid, then the 4 cells, all saved."""

from __future__ import annotations

from datetime import date

from tests.browser.helpers import choose_option, fill_small_txt2img, gallery_image, set_slider, wait_for_result


def _type(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(text)


def test_two_by_two_plot_makes_the_grid_and_saves_the_cells(page, server, shots):
    grids_dir = server.outputs / "txt2img-grids" / date.today().isoformat()
    before = set(grids_dir.glob("xyz_grid-*.png")) if grids_dir.exists() else set()
    fill_small_txt2img(page, "a tiny plot", seed=42)
    set_slider(page, "txt2img_steps", 1)
    assert page.locator("#txt2img_xyz_x_type").count() == 0  # hidden until the script is chosen
    choose_option(page, "txt2img_script", "X/Y/Z plot")
    page.locator("#txt2img_xyz_x_type").wait_for()
    choose_option(page, "txt2img_xyz_z_type", "Sampler")  # an axis with choices: 📒 fills its values
    page.locator("#txt2img_xyz_z_fill").click()
    z_values = page.locator("#txt2img_xyz_z_values").locator("textarea, input").first
    page.wait_for_function("el => el.value.includes('Euler a')", arg=z_values.element_handle())
    choose_option(page, "txt2img_xyz_z_type", "Nothing")
    choose_option(page, "txt2img_xyz_x_type", "Steps")
    _type(page, "txt2img_xyz_x_values", "1-2")
    choose_option(page, "txt2img_xyz_y_type", "CFG Scale")
    _type(page, "txt2img_xyz_y_values", "3, 7")
    page.locator("#txt2img_xyz_include_sub_images input[type=checkbox]").check()
    page.locator("#txt2img_generate").click()
    infotext = wait_for_result(page, "txt2img")
    page.screenshot(path=shots / "txt2img-xyz.png", full_page=True)
    assert "Script: X/Y/Z plot" in infotext and "X Type: Steps" in infotext and "Y Type: CFG Scale" in infotext
    grid = gallery_image(page, "txt2img")
    assert grid.width > 128 and grid.height > 128  # 2 × 2 cells of 64 px and the legend
    assert "X Values: 1-2" in grid.info["parameters"]
    sources = page.locator("#txt2img_gallery img[src*='file=']").evaluate_all("els => els.map(e => e.src)")
    shown = [s.rsplit("/", 1)[-1] for s in dict.fromkeys(s.split("file=")[-1] for s in sources)]
    new_grids = set(grids_dir.glob("xyz_grid-*.png")) - before
    assert len(new_grids) == 1 and len(shown) == 5 and shown[0] == new_grids.pop().name, shown
    cells_dir = server.outputs / "txt2img-images" / date.today().isoformat()
    assert all((cells_dir / name).is_file() and name.endswith("-42.png") for name in shown[1:]), shown

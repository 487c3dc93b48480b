"""The results' 💾 Save and 📂 Open outputs folder buttons.

Save keeps a finished job's images that were not written (live mode, --no-save) through the OutputWriter, once:
a second click reports the files it already made. The folder opens in the OS file browser only when sdui and the
browser are on the same machine (as A1111's 📂; --listen/--share refuse, like its --hide-ui-dir-config).
"""

from __future__ import annotations

import copy
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from sdui.engine.postprocess import ExtrasResult
from sdui.outputs.save import OutputWriter, SaveError
from sdui.ui.results import Results

if TYPE_CHECKING:
    from sdui.jobs import JobQueue
    from sdui.settings import Settings
    from sdui.ui.context import UIContext

SAVE_CONCURRENCY_ID = "save"  # one Save at a time, for everybody: two clicks never save the same job twice


class NothingToSave(Exception):
    """The Save click has no unsaved images to keep; the message says why."""


class FolderRefused(Exception):
    """The outputs folder may not be opened from this browser; the message says why and where the files are."""


def save_job(queue: JobQueue, job_id: str | None, owner: str) -> tuple[list[Path], bool]:
    """Write the images of `owner`'s finished job `job_id` unless they were written; return (paths, newly saved).

    Raises NothingToSave, or SaveError from the writer (the files written before it are recorded on the job).
    """
    job = queue.get(job_id) if job_id else None
    if job_id is None:
        raise NothingToSave("Nothing to save yet: generate an image first")
    if job is None or job.owner != owner:
        raise NothingToSave("That image is no longer kept in memory (only the latest jobs are): generate it again")
    if not job.done:
        raise NothingToSave("The job is still running: press Save when its image is shown")
    if job.saved_paths:
        return list(job.saved_paths), False
    result = job.result
    if result is None or not result.images:
        raise NothingToSave("Nothing to save: the last job made no image")
    if queue.writer is None:
        raise NothingToSave("Saving is not set up in this server (no output writer)")
    writer = _writing(queue.writer)
    try:
        paths = writer.save_extras(result) if isinstance(result, ExtrasResult) else writer.save(result)
    except SaveError as e:
        job.saved_paths = list(e.saved)
        raise
    job.saved_paths, job.save_error = list(paths), None
    return list(paths), True


def _writing(writer: OutputWriter) -> OutputWriter:
    """`writer`, or with --no-save a copy that writes (it shares the original's numbering locks)."""
    if writer.enabled:
        return writer
    enabled = copy.copy(writer)
    enabled.enabled = True
    return enabled


def open_in_file_browser(folder: Path) -> None:
    """Show `folder` in the OS file browser (Explorer, Finder, xdg-open); OSError when there is none."""
    if sys.platform == "win32":
        os.startfile(folder)  # noqa: S606 - a folder path, never a command line
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        raise OSError(f"no `{opener}` command on this machine")
    subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def open_outputs(settings: Settings, folder: Path, client_host: str | None) -> str:
    """Open `folder` for a browser at `client_host`; return what to tell the user.

    Raises FolderRefused when sdui is served to other machines or the browser is not on this one.
    """
    if settings.listen or settings.share or not _is_loopback(client_host):
        raise FolderRefused("Opening folders works only when sdui and your browser run on the same machine "
                            f"(not with --listen or --share). The images are in {folder} on the server.")
    if not folder.is_dir():
        return f"Nothing saved yet: {folder} does not exist (it is made with the first saved image)"
    try:
        open_in_file_browser(folder)
    except OSError as e:
        return f"Could not open a file browser ({e}). The images are in {folder}"
    return f"Opened {folder}"


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def bind(ctx: UIContext, results: Results, folder: Path) -> None:
    """Wire 💾 Save (keeps the shown job's images, shows where) and 📂 (opens `folder`)."""
    assert results.save is not None and results.open_folder is not None

    def save(job_id: str | None, data: dict | None, request: gr.Request):
        try:
            paths, new = save_job(ctx.queue, job_id, request.session_hash or "")
        except NothingToSave as e:
            raise gr.Error(str(e)) from e
        except SaveError as e:
            raise gr.Error(f"The images were not saved: {e}") from e
        names = ", ".join(f"`{path}`" for path in paths)
        if not new:
            gr.Info(f"Already saved: {', '.join(map(str, paths))}")
        return {**(data or {}), "paths": [str(p) for p in paths]}, ("Saved: " if new else "Already saved: ") + names

    def open_folder(request: gr.Request) -> None:
        try:
            gr.Info(open_outputs(ctx.settings, folder, request.client.host if request.client else None))
        except FolderRefused as e:
            raise gr.Error(str(e)) from e

    # Queued so gr.Error shows a toast (Gradio 6 shows none for queue=False).
    results.save.click(save, [results.shown, results.data], [results.data, results.saved],
                       concurrency_id=SAVE_CONCURRENCY_ID, concurrency_limit=1, api_visibility="private",
                       show_progress="hidden")
    results.open_folder.click(open_folder, None, None, api_visibility="private", show_progress="hidden")

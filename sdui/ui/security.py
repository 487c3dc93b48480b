"""Launch-time safety: who may open the UI (share/listen need a password) and which files it may serve."""

from __future__ import annotations

from pathlib import Path

from sdui.settings import Settings

SHARE_REFUSED = (
    "Refusing to start: --share makes a public link that anyone who finds it can use to run jobs on this "
    "machine, and no password is set.\n"
    "Add one with  --gradio-auth user:password  (or --gradio-auth-path FILE with user:password lines),\n"
    "or pass --insecure-share if you really want an open public link."
)
INSECURE_SHARE_WARNING = (
    "WARNING: --insecure-share: the public link has NO password. Anyone with the URL can use this "
    "machine and read the generated images. Stop the server when you are done."
)
LISTEN_WARNING = (
    "WARNING: --listen without --gradio-auth: anyone on your network can use this UI. "
    "Add --gradio-auth user:password to require a login."
)


class LaunchRefused(Exception):
    """The flags ask for something unsafe; the message says how to fix the command line."""


def check_launch(settings: Settings) -> list[str]:
    """Raise LaunchRefused for --share without auth; return the warnings to print before starting."""
    warnings = []
    if settings.share and not settings.gradio_auth:
        if not settings.insecure_share:
            raise LaunchRefused(SHARE_REFUSED)
        warnings.append(INSECURE_SHARE_WARNING)
    if settings.listen and not settings.gradio_auth:
        warnings.append(LISTEN_WARNING)
    return warnings


def launch_options(settings: Settings) -> dict:
    """The keyword arguments of `Blocks.launch` that decide access and file serving."""
    return {
        "server_name": settings.server_name,
        "server_port": settings.port,
        "share": settings.share,
        "auth": list(settings.gradio_auth) or None,
        # Only generated images may be served from disk; the models and hash cache never.
        "allowed_paths": [str(settings.outputs_dir)],
        "blocked_paths": [str(p) for p in blocked_dirs(settings)],
        "max_file_size": f"{settings.max_file_size_mb}mb",
    }


def blocked_dirs(settings: Settings) -> list[Path]:
    """Directories whose files must never be downloadable (checkpoints can be many GB and private)."""
    return [settings.ckpt_dir, *settings.network_dirs, settings.cache_dir]

"""Start sdui: flags → Settings → Catalog → ModelManager → Engine → OutputWriter → JobQueue → web UI."""

from __future__ import annotations

import sys

from sdui.settings import Settings, parse_args


def build_services(settings: Settings):
    """Create the process-wide objects, in dependency order, and start the job worker."""
    from sdui.engine.generate import Engine
    from sdui.jobs import JobQueue
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.models.tiny import ensure_demo_model
    from sdui.outputs.save import OutputWriter
    from sdui.ui.context import UIContext

    catalog = Catalog(settings.ckpt_dir, settings.cache_dir)
    if not catalog.list():
        print(f"sdui: no checkpoint in {settings.ckpt_dir}; building the tiny demo model (noise-like images)")
        ensure_demo_model(settings.ckpt_dir)
        catalog.refresh()
    manager = ModelManager(catalog, settings)
    manager.on_status = lambda message: print(f"sdui: {message}")
    writer = OutputWriter(settings.outputs_dir, fmt=settings.save_format, enabled=not settings.no_save)
    queue = JobQueue(Engine(manager), writer)
    queue.start()
    return UIContext(queue=queue, manager=manager, catalog=catalog, settings=settings)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, refuse unsafe launches, build everything and serve until stopped."""
    settings = parse_args(argv)
    from sdui.ui.security import LaunchRefused, check_launch, launch_options

    try:
        warnings = check_launch(settings)
    except LaunchRefused as e:
        print(f"sdui: {e}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"sdui: {warning}", file=sys.stderr)

    from sdui.ui.blocks import build_ui

    ctx = build_services(settings)
    demo = build_ui(ctx)
    demo.queue(default_concurrency_limit=None)
    app, local_url, share_url = demo.launch(prevent_thread_lock=True, show_error=True, **launch_options(settings))
    if settings.api:
        from sdui.api import mount_api

        mount_api(app, queue=ctx.queue, manager=ctx.manager, catalog=ctx.catalog, settings=settings)
    print(f"sdui: running at {local_url}" + (f" (public link: {share_url})" if share_url else ""), flush=True)
    try:
        demo.block_thread()
    finally:
        ctx.queue.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

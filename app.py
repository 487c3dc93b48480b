"""Start sdui: flags → Settings → Catalog → ModelManager → Engine → OutputWriter → JobQueue → web UI."""

from __future__ import annotations

import sys

from sdui.settings import Settings, parse_args
from sdui.ui.context import UIContext
from sdui.ui.security import LaunchRefused, check_launch, launch_options


def build_services(settings: Settings) -> UIContext:
    """Create the process-wide objects, in dependency order, and start the job worker."""
    from sdui.engine.generate import Engine
    from sdui.jobs import JobQueue
    from sdui.models.catalog import Catalog
    from sdui.models.manager import ModelManager
    from sdui.models.memory import tune_allocator
    from sdui.options import Options, apply_live, forget_missing_models
    from sdui.outputs.save import OutputWriter

    tune_allocator()  # before the first model is loaded: see sdui/models/memory.py
    options = Options.for_data_dir(settings)  # config.json: flags win over it
    settings = options.start_settings()
    catalog = Catalog(settings.ckpt_dir, settings.cache_dir, exclude=settings.network_dirs)
    manager = ModelManager(catalog, settings)
    manager.on_status = lambda message: print(f"sdui: {message}", flush=True)
    # With an empty models dir this downloads the default model (--download-default) or builds the demo one,
    # so the checkpoint dropdown is never empty.
    manager.info(None)
    forget_missing_models(options, catalog, manager.extras.vaes)
    for message in options.messages:
        print(f"sdui: {message}", file=sys.stderr, flush=True)
    writer = OutputWriter(settings.outputs_dir, fmt=settings.save_format, enabled=not settings.no_save)
    engine = Engine(manager)
    apply_live(options, writer, engine)
    options.on_change(lambda changed: apply_live(options, writer, engine))
    queue = JobQueue(engine, writer)
    queue.start()
    from sdui.styles import StyleStore

    return UIContext(queue=queue, manager=manager, catalog=catalog, settings=settings, options=options,
                     styles=StyleStore.in_data_dir(settings.data_dir))


def main(argv: list[str] | None = None) -> int:
    """Parse flags, refuse unsafe launches, build everything and serve until stopped."""
    settings = parse_args(argv)
    try:
        warnings = check_launch(settings)
    except LaunchRefused as e:
        print(f"sdui: {e}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"sdui: {warning}", file=sys.stderr)

    # Heavy imports (torch, diffusers, gradio) only once the flags are known to be acceptable.
    from sdui.ui.blocks import build_ui

    ctx = build_services(settings)
    demo = build_ui(ctx)
    demo.queue(default_concurrency_limit=None)
    app, local_url, share_url = demo.launch(prevent_thread_lock=True, show_error=True, **launch_options(settings))
    if settings.api:
        from sdui.api import mount_api, warn_if_exposed

        warn_if_exposed(settings)
        mount_api(app, queue=ctx.queue, manager=ctx.manager, catalog=ctx.catalog, settings=ctx.settings,
                  options=ctx.options, styles=ctx.styles)
    print(f"sdui: running at {local_url}" + (f" (public link: {share_url})" if share_url else ""), flush=True)
    try:
        demo.block_thread()
    finally:
        ctx.queue.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

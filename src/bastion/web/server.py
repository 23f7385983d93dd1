"""Running the API server (uvicorn) around a runtime, with rules hot reload when the rules engine offers it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bastion.app import Runtime, build_runtime
from bastion.observability import setup_logging
from bastion.settings import Settings
from bastion.web.keys import ApiKeyStore

log = logging.getLogger("bastion.web")


def build_web_app(settings: Settings, runtime: Runtime | None = None) -> Any:
    from bastion.web.api import create_app

    runtime = runtime or build_runtime(settings, out_dir=None)
    keys = ApiKeyStore(settings.db_path)
    app = create_app(runtime, keys)
    try:
        from bastion.web.ui import mount_ui  # the reviewer UI, when built
    except ImportError:
        mount_ui = None
    if mount_ui is not None:
        mount_ui(app, settings, runtime)
    from bastion.rules import RulesDetector
    from bastion.rules.watch import RulesWatcher

    for det in runtime.detectors:
        if isinstance(det, RulesDetector):
            def on_reload(ok: bool, message: str, directory: object = det.directory) -> None:
                if ok:
                    log.info("rules reloaded from %s: %s", directory, message)
                else:
                    log.error("rules in %s refused, the running set stays in service: %s", directory, message)

            watcher = RulesWatcher(det, interval_s=2.0, on_reload=on_reload)
            watcher.start()
            app.state.rules_watcher = watcher
    return app


def serve_forever(settings: Settings, runtime: Runtime | None = None) -> None:
    import uvicorn

    setup_logging(settings.log_json)
    app = build_web_app(settings, runtime)
    Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
    log.info("serving on http://%s:%s (OpenAPI docs at /docs)", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")

"""Running the API server (uvicorn) around a runtime, with rules hot reload when the rules engine offers it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bastion.app import Runtime, build_runtime
from bastion.observability import setup_logging
from bastion.settings import Settings
from bastion.web.keys import ApiKeyStore

log = logging.getLogger("bastion.web")


def build_web_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The API and the reviewer UI over ``runtime`` (built here with the ``api`` profile when not given; one
    given must have been built with it: review service, team console and metrics)."""
    from bastion.web.api import create_app

    runtime = runtime or build_runtime(settings, "api")
    keys = ApiKeyStore(settings.db_path)
    app = create_app(runtime, keys)
    try:
        from bastion.web.ui import mount_ui  # the reviewer UI, when built
    except ImportError:
        mount_ui = None
    if mount_ui is not None:
        mount_ui(app, settings, runtime)
    if runtime.labeler is not None:   # the public atproto label routes (queryLabels, subscribeLabels)
        from bastion.labeler.routes import mount_labeler

        mount_labeler(app, runtime.labeler.log)
    rules = runtime.rules
    if rules is not None:
        from bastion.rules.watch import RulesWatcher

        def on_reload(ok: bool, message: str, directory: object = rules.directory) -> None:
            if ok:
                log.info("rules reloaded from %s: %s", directory, message)
            else:
                log.error("rules in %s refused, the running set stays in service: %s", directory, message)

        watcher = RulesWatcher(rules, interval_s=2.0, on_reload=on_reload)
        watcher.start()
        app.state.rules_watcher = watcher
    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn is run: forwarded client addresses (``X-Forwarded-For``/``-Proto``) are believed only from
    ``settings.trusted_proxies`` - with none configured (the default) the peer address is the client, whatever
    the headers say. (uvicorn on its own trusts 127.0.0.1, so every local caller could pick its address.)"""
    trusted = list(settings.trusted_proxies)
    return {"host": settings.host, "port": settings.port, "log_level": "warning",
            "proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or [], "server_header": False}


def serve_forever(settings: Settings, runtime: Runtime | None = None) -> None:
    import uvicorn

    setup_logging(settings.log_json)
    app = build_web_app(settings, runtime)
    Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
    docs = "no OpenAPI docs in production" if settings.environment == "production" else "OpenAPI docs at /docs"
    log.info("serving on http://%s:%s (%s)", settings.host, settings.port, docs)
    uvicorn.run(app, **uvicorn_options(settings))

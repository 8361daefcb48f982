"""Running the exporter: serve until stopped, or collect once and print."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from copilot_exporter import __version__, exposition
from copilot_exporter.config import Config
from copilot_exporter.errors import ConfigError
from copilot_exporter.refresher import Refresher
from copilot_exporter.server import App, serve
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry
from copilot_exporter.webconfig import load_web_config

log = logging.getLogger("copilot_exporter")


def collect(config: Config) -> int:
    store, telemetry = Store(), Telemetry()
    refresher = Refresher(config, store, telemetry)
    ok = refresher.run_once()
    refresher.stop()
    text = store.render(openmetrics=False)[1] + exposition.render_families(telemetry.families(), False)
    sys.stdout.write(text)
    return 0 if ok else 1


def run(config: Config, listen_address: str, web_config_file: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT: the refresher in the background, the HTTP server in front.

    Returns 2 without serving when the web config file is invalid.
    """
    web = None
    if web_config_file:
        try:
            web = load_web_config(web_config_file)
        except ConfigError as err:
            print(f"{web_config_file}: {err}", file=sys.stderr)
            return 2
    store, telemetry = Store(), Telemetry()
    refresher = Refresher(config, store, telemetry)
    server = serve(App(store, telemetry), listen_address, web, config.server_limits)
    log.info("serving on %s (version %s, %d scopes, source %s, %s%s)", listen_address, __version__,
             len(config.entries), config.source, "https" if web and web.tls else "http",
             ", basic auth" if web and web.basic_auth_users else "")
    refresher.start()

    def shutdown(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        refresher.stop()
        server.server_close()
    return 0

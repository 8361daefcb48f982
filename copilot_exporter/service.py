"""Running the exporter: serve until stopped, or collect once and print."""

from __future__ import annotations

import logging
import os
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

# Seconds between SIGTERM/SIGINT and the end of the process, at most. Shutting down normally takes
# well under a second, but a refresh worker blocked in a socket (a server sending a byte a
# minute) would hold the interpreter's exit, which joins worker threads: past this, the process
# ends without them. They hold nothing to save: the data is refetched at the next start.
EXIT_GRACE = 2.0


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
        threading.Thread(target=_exit_after, args=(EXIT_GRACE,), name="exit", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        signal.signal(signal.SIGHUP, _ignore_hangup)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        refresher.stop()
        server.server_close()
    return 0


def _ignore_hangup(_signum: int, _frame: object) -> None:
    # SIGHUP's default action ends the process without a word (a closed terminal, a reload
    # habit). Nothing here can be reloaded in place: the configuration is read at start.
    log.warning("received SIGHUP: ignored (the configuration is only read at start; restart to apply changes)")


def _exit_after(seconds: float) -> None:
    """Ends the process `seconds` from now unless it has ended by itself, whatever its threads do."""
    threading.Event().wait(seconds)
    log.warning("refresh workers still busy %.0fs after the signal: exiting without them", seconds)
    logging.shutdown()
    os._exit(0)

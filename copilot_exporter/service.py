"""Running the exporter: serve until stopped, or collect once and print."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from copilot_exporter import __version__, exposition
from copilot_exporter.config import Config, Credentials, _listen_address_problem, load_config
from copilot_exporter.errors import ConfigError
from copilot_exporter.github.app import private_key_problem
from copilot_exporter.model import ORG
from copilot_exporter.refresher import Refresher
from copilot_exporter.server import App, ListenError, serve
from copilot_exporter.state import StateError, StateStore
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry
from copilot_exporter.webconfig import WebConfig, load_web_config

log = logging.getLogger("copilot_exporter")

# Seconds between SIGTERM/SIGINT and the end of the process, at most. Shutting down normally takes
# well under a second, but a refresh worker blocked in a socket (a server sending a byte a
# minute) would hold the interpreter's exit, which joins worker threads: past this, the process
# ends without them. They hold nothing to save: the data is refetched at the next start.
EXIT_GRACE = 2.0


@dataclass(frozen=True)
class Startup:
    """What serving needs, checked whole: the configuration, the address and the web config."""

    config: Config
    listen_address: str
    web: WebConfig | None


def check(config_file: str, listen_address: str | None = None, web_config_file: str | None = None) -> Startup:
    """Every check start-up makes short of binding, for `serve` and `check-config` alike.

    Raises ConfigError listing every problem, each prefixed with its file (or flag) and key path.
    """
    problems: list[str] = []
    config = None
    try:
        config = load_config(config_file)
    except ConfigError as err:
        problems += [_in(config_file, problem) for problem in err.problems]
    if config is not None:
        problems += [_in(config_file, problem) for problem in _key_problems(config)]
    if listen_address is not None:
        problem = _listen_address_problem(listen_address)
        if problem:
            problems.append(f"--web.listen-address: {problem}")
    web = None
    if web_config_file:
        try:
            web = load_web_config(web_config_file)
        except ConfigError as err:
            problems += [_in(web_config_file, problem) for problem in err.problems]
    if problems or config is None:
        raise ConfigError(problems)
    return Startup(config, listen_address or config.listen_address, web)


def _in(origin: str, problem: str) -> str:
    return problem if problem.startswith(f"{origin}: ") else f"{origin}: {problem}"


def _key_problems(config: Config) -> list[str]:
    """GitHub App private keys that cannot sign: found now rather than at the first refresh."""
    used: list[tuple[str, Credentials | None]] = [("github", config.github.credentials)]
    position: dict[str, int] = {}
    for entry in config.entries:
        kind = "organizations" if entry.scope.kind == ORG else "enterprises"
        index = position.setdefault(kind, 0)
        position[kind] = index + 1
        used.append((f"{kind}[{index}].github", entry.credentials))
    problems = []
    for path, credentials in used:
        app = credentials.app if credentials is not None else None
        problem = private_key_problem(app.private_key_file) if app is not None else None
        if problem:
            problems.append(f"{path}.app.private_key_file: {problem}")
    return problems


def open_state(config: Config) -> StateStore | None:
    """The state store of `config.state_dir`; None, with one line on stderr, when it cannot be used."""
    try:
        return StateStore(config.state_dir)
    except StateError as err:
        print(f"copilot-exporter: {err}", file=sys.stderr)
        return None


def collect(config: Config) -> int:
    state = open_state(config)
    if state is None:
        return 2
    store, telemetry = Store(), Telemetry()
    refresher = Refresher(config, store, telemetry, state=state)
    ok = refresher.run_once()
    refresher.stop()
    state.close()
    text = store.render(openmetrics=False)[1] + exposition.render_families(telemetry.families(), False)
    sys.stdout.write(text)
    return 0 if ok else 1


def run(
    config: Config,
    listen_address: str,
    web_config_file: str | None = None,
    *,
    web: WebConfig | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT: the refresher in the background, the HTTP server in front.

    `ready` is called with the server's URL once it listens. Returns 2 without serving when the
    web config file is invalid, the state directory is in use or the address cannot be listened on.
    """
    if web_config_file and web is None:
        try:
            web = load_web_config(web_config_file)
        except ConfigError as err:
            print(f"{web_config_file}: {err}", file=sys.stderr)
            return 2
    state = open_state(config)
    if state is None:
        return 2
    store, telemetry = Store(), Telemetry()
    try:
        server = serve(App(store, telemetry), listen_address, web, config.server_limits)
    except ListenError as err:
        print(err, file=sys.stderr)
        state.close()
        return 2
    refresher = Refresher(config, store, telemetry, state=state)
    log.info(
        "serving on %s (version %s, %d scopes, source %s, %s%s)",
        listen_address,
        __version__,
        len(config.entries),
        config.source,
        "https" if web and web.tls else "http",
        ", basic auth" if web and web.basic_auth_users else "",
    )
    if ready is not None:
        ready(_url(server.server_address, web))
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
        server.server_close()  # the state closes with the process: a worker may still be writing
    return 0


def _url(address: tuple, web: WebConfig | None) -> str:
    host, port = address[0], address[1]
    if host in ("0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if web and web.tls else 'http'}://{host}:{port}/"


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

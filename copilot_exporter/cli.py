"""Command line: serve (default), collect, check-config, backfill, demo.

Flags follow Prometheus conventions; each can also be set by the environment variable shown in
`--help`, so containers need no command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from copilot_exporter import __version__, backfill, logs, remote_write
from copilot_exporter.errors import ConfigError
from copilot_exporter.service import check, collect, run
from copilot_exporter.shards import parse_shard

COMMANDS = ("serve", "collect", "check-config", "backfill", "demo")
DEFAULT_LISTEN = ":9452"


def _flag(parser: argparse.ArgumentParser, *names: str, env: str, suppress: bool, **kwargs: object) -> None:
    default = os.environ.get(env, kwargs.pop("default", None))
    help_text = f"{kwargs.pop('help')} (env {env})"
    # After the sub-command a flag not given must not replace the value given before it.
    parser.add_argument(*names, default=argparse.SUPPRESS if suppress else default, help=help_text, **kwargs)  # type: ignore[arg-type]


def _global_flags(suppress: bool) -> argparse.ArgumentParser:
    """The flags every sub-command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    _flag(
        common,
        "--config",
        "--config.file",
        dest="config",
        env="COPILOT_EXPORTER_CONFIG",
        suppress=suppress,
        default="config.yaml",
        help="configuration file",
    )
    _flag(
        common,
        "--web.listen-address",
        dest="listen_address",
        env="COPILOT_EXPORTER_LISTEN_ADDRESS",
        suppress=suppress,
        help=f"address to serve /metrics on, [host]:port (default: the config's, else {DEFAULT_LISTEN})",
    )
    _flag(
        common,
        "--web.config.file",
        dest="web_config_file",
        env="COPILOT_EXPORTER_WEB_CONFIG_FILE",
        suppress=suppress,
        help="exporter-toolkit web config file enabling TLS and/or basic auth",
    )
    _flag(
        common,
        "--state.dir",
        dest="state_dir",
        env="COPILOT_EXPORTER_STATE_DIR",
        suppress=suppress,
        help="directory of the exporter's state database, one process each (default: the config's state_dir)",
    )
    _flag(
        common,
        "--log.level",
        dest="log_level",
        env="COPILOT_EXPORTER_LOG_LEVEL",
        suppress=suppress,
        default="info",
        choices=["debug", "info", "warn", "warning", "error"],
        help="log level",
    )
    _flag(
        common,
        "--log.format",
        dest="log_format",
        env="COPILOT_EXPORTER_LOG_FORMAT",
        suppress=suppress,
        default="logfmt",
        choices=["logfmt", "json"],
        help="log format",
    )
    _flag(
        common,
        "--shard",
        dest="shard",
        env="COPILOT_EXPORTER_SHARD",
        suppress=suppress,
        help="refresh only shard i of n of the configured scopes, i/n (0-based; default: the config's shard)",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _global_flags(suppress=True)
    parser = argparse.ArgumentParser(
        prog="copilot-exporter",
        parents=[_global_flags(suppress=False)],
        description="Prometheus exporter for GitHub Copilot usage metrics.",
    )
    parser.add_argument("--version", action="version", version=f"copilot-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", parents=[common], help="refresh in the background and serve /metrics (default)")
    commands.add_parser(
        "collect", parents=[common], help="refresh every scope once, print the exposition, exit 0 if all succeeded"
    )
    commands.add_parser("check-config", parents=[common], help="validate the configuration and exit")
    history = commands.add_parser(
        "backfill",
        parents=[common],
        help="write past days of every scope as OpenMetrics for promtool tsdb create-blocks-from openmetrics",
    )
    history.add_argument(
        "--from",
        dest="from_day",
        required=True,
        type=backfill.parse_day,
        metavar="YYYY-MM-DD",
        help="first day to write",
    )
    history.add_argument(
        "--to",
        dest="to_day",
        type=backfill.parse_day,
        metavar="YYYY-MM-DD",
        help="last day to write (default: per scope, the day before the live exporter's)",
    )
    history.add_argument(
        "--output",
        metavar="FILE",
        help="OpenMetrics file to write; FILE.state and FILE.parts/ keep progress for a rerun "
        f"to resume (without it, {backfill.PROGRESS_NAME}.state and .parts/); --output, "
        "--remote-write or both",
    )
    history.add_argument(
        "--step",
        type=backfill.parse_step,
        default=backfill.DEFAULT_STEP,
        metavar="DURATION",
        help="time between two samples of a day's value (default 1h)",
    )
    history.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        type=backfill.parse_label,
        metavar="NAME=VALUE",
        help="label added to every series, repeatable: give the job and "
        "instance Prometheus scrapes the exporter as, so history and live data are the same series",
    )
    remote_write.add_flags(history)
    commands.add_parser("demo", parents=[common], help="serve against the built-in simulated GitHub, no token needed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(arg in COMMANDS for arg in argv) and not {"-h", "--help", "--version"} & set(argv):
        argv.insert(0, "serve")
    args = _parser().parse_args(argv)
    logs.setup({"warn": "warning"}.get(args.log_level, args.log_level), args.log_format)
    if args.command == "demo":
        from copilot_exporter.demo import run_demo  # the simulator is only loaded when asked for

        return run_demo(args.listen_address or DEFAULT_LISTEN, args.state_dir)
    try:
        startup = check(args.config, args.listen_address, args.web_config_file)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    config = startup.config
    if args.state_dir:
        config = dataclasses.replace(config, state_dir=args.state_dir)
    if args.shard:
        try:
            config = dataclasses.replace(config, shard=parse_shard(args.shard))
        except ValueError as err:
            print(f"--shard: {err}", file=sys.stderr)
            return 2
    if args.command == "check-config":
        shard = f"; shard {config.shard}: {len(config.own_entries())} of them" if config.shard else ""
        print(f"{args.config}: configuration is valid ({len(config.entries)} scopes{shard})")
        return 0
    if args.command == "collect":
        return collect(config)
    if args.command == "backfill":
        try:
            remote = remote_write.options_from(args)
        except ValueError as err:
            print(f"backfill: {err}", file=sys.stderr)
            return 2
        if not (args.output or remote):
            print("backfill: give --output FILE, --remote-write URL or both", file=sys.stderr)
            return 2
        return backfill.run_backfill(
            config, args.from_day, args.to_day, args.output, args.step, args.labels, remote=remote
        )
    return run(config, startup.listen_address, web=startup.web)

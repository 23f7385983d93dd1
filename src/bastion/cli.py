"""The ``bastion`` command line. Each command module under ``bastion.commands`` registers its commands here;
commands parse arguments and call into ``bastion.app`` (or the area's own service functions), nothing more."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="bastion",
    help="Bastion: real-time trust-and-safety for social platforms (rules, models, repeat offenders, "
    "clusters, harm-ranked review).",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Order is the order of `bastion --help`.
COMMAND_MODULES = (
    "init",       # init DIR
    "core",       # replay, serve, demo
    "data",       # data fetch/list
    "sim",        # sim, eval
    "rules",      # rules check/test/backtest
    "models",     # train, models list/eval, score text/accounts
    "detect",     # clusters run, linker
    "review",     # users add, review helpers
    "keys",       # keys add/list/revoke
    "labeler",    # labeler keygen/pubkey/serve (atproto labels)
    "scale",      # worker, produce
    "bots",       # score-accounts, bots eval/train
    "bench",      # bench NAME
)



@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True),
) -> None:
    if version:
        from bastion import __version__

        typer.echo(f"bastion {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


for _name in COMMAND_MODULES:
    _mod = importlib.import_module(f"bastion.commands.{_name}")
    _mod.register(app)


def main() -> None:
    """The console entry point: an optional package or a data set that is missing, or a setting that does not
    parse, is one line on stderr (what, and how to fix it) and exit code 2, not a traceback."""
    import sys

    from bastion.datasets import DataNotFoundError
    from bastion.extras import MissingExtra
    from bastion.settings import SettingsError

    try:
        app()
    except (MissingExtra, DataNotFoundError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""``bastion data fetch|list``: the public data sets the simulator, the demo and model training read."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="The public data sets (texts, bot accounts, platform captures): fetch, list.",
                       no_args_is_help=True)


def _settings():  # type: ignore[no-untyped-def]
    from bastion.settings import Settings, SettingsError

    try:
        return Settings.load()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@data_app.command("fetch")
def fetch_cmd(
    target: Path | None = typer.Option(None, "--dir", help="data folder to fill (default: the data folder, "
                                                           "$BASTION_DATA_DIR or shared/data beside the checkout)"),
    mirror: str | None = typer.Option(None, "--mirror", help="fetch every file from a mirror laid out like the "
                                                              "data folder (http(s):// or file:// URL, or a folder); "
                                                              "default $BASTION_DATA_MIRROR, else the published "
                                                              "sources"),
    upstream: str | None = typer.Option(None, "--upstream", help="host that replaces "
                                                                  "https://raw.githubusercontent.com in the published "
                                                                  "URLs (default $BASTION_DATA_UPSTREAM)"),
    only: list[str] = typer.Option([], "--only", help="just this data set (repeatable)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Download the public data sets from their published sources (or a mirror), each file checked against the
    sha256 in the packaged manifest. Files already present and intact are kept."""
    from bastion.datasets.fetch import FetchError, fetch, load_manifest

    settings = _settings()
    dest = target or settings.data_dir
    mirror = mirror or settings.data_mirror
    upstream = upstream or settings.data_upstream
    manifest = load_manifest()
    names = list(only) or sorted(manifest)
    size = sum(e["size"] for n in names if n in manifest for e in manifest[n]["files"].values())
    typer.echo(f"fetching {len(names)} data set(s), {size / 1e6:.1f} MB, into {dest} from "
               f"{mirror or 'the published sources' + ('' if upstream.startswith('https://raw.') else f' via {upstream}')}",
               err=True)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("[bold]fetch"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TextColumn("{task.description}"), disable=not progress, transient=True) as prog:
        task = prog.add_task("", total=None)

        def show(name: str, done: int, total: int) -> None:
            prog.update(task, completed=done, total=total, description=name)

        try:
            report = fetch(dest, mirror=mirror, upstream=upstream, only=only, manifest=manifest, progress=show)
        except FetchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{len(report.downloaded)} file(s) downloaded ({report.bytes / 1e6:.1f} MB), "
               f"{len(report.present)} already present, {len(report.skipped)} without a published source, "
               f"{len(report.failed)} failed; data folder {dest}")
    if report.skipped:
        sets = sorted({s.split("/")[0] for s in report.skipped})
        typer.echo(f"not published anywhere (written or derived here; use --mirror): {len(report.skipped)} "
                   f"file(s) of {', '.join(sets)}", err=True)
    for name, why in report.failed:
        typer.echo(f"failed: {name}: {why}", err=True)
    if report.failed:
        raise typer.Exit(1)


@data_app.command("list")
def list_cmd(
    target: Path | None = typer.Option(None, "--dir", help="data folder (default: the data folder)"),
) -> None:
    """Each data set: files present (by name and size) and missing in the data folder."""
    from bastion.datasets.fetch import load_manifest

    dest = target or _settings().data_dir
    typer.echo(f"data folder {dest}")
    for name, ds in sorted(load_manifest().items()):
        files = ds["files"]
        have = sum(1 for rel, e in files.items() if (dest / name / rel).is_file()
                   and (dest / name / rel).stat().st_size == e["size"])
        typer.echo(f"  {name:32s} {have:4d}/{len(files)} files {'ok' if have == len(files) else 'MISSING'}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")

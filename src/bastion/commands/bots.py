"""Bot-detector commands: ``bastion score-accounts FILE.csv`` (also ``bastion score accounts`` when the
models area's ``score`` group exists), ``bastion bots eval [--write-docs]`` and ``bastion bots train
[--ship]``. Heavy imports stay inside the functions so ``bastion --help`` stays fast."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

bots_app = typer.Typer(help="Bot detector: real-data evaluation and training.", no_args_is_help=True)


def score_accounts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="CSV with Twitter user-object columns (id, screen_name, ...; any may be missing)"),
    out: Path | None = typer.Option(None, "--out", help="write id,score here (default: stdout)"),
    now: str | None = typer.Option(None, help="reference time for account age (ISO 8601 or Twitter format); "
                                   "default: a probe_timestamp column where present, else the current time"),
    models_dir: Path | None = typer.Option(None, help="search this models directory before the shipped ones"),
) -> None:
    """Score accounts with the shipped profile model; writes ``id,score`` (calibrated bot probability)."""
    import csv
    import sys
    import time

    from bastion.models.bots import BotDetector
    from bastion.models.bots.adapters import account_from_user_row, iter_user_rows, parse_time_ms
    from bastion.models.registry import ModelRegistry

    detector = BotDetector.load(ModelRegistry.default(models_dir))
    fixed_now = parse_time_ms(now) if now else None
    if now and fixed_now is None:
        raise typer.BadParameter(f"cannot parse --now {now!r}")
    wall_now = int(time.time() * 1000)
    fh = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115 - closed below
    try:
        writer = csv.writer(fh)
        writer.writerow(["id", "score"])
        batch: list = []
        nows: list[int] = []

        def flush() -> None:
            if batch:
                for acc, p in zip(batch, detector.score_batch(batch, nows), strict=True):
                    writer.writerow([acc.id, f"{p:.6f}"])
                batch.clear()
                nows.clear()

        for row in iter_user_rows(file):
            batch.append(account_from_user_row(row))
            nows.append(fixed_now or parse_time_ms(row.get("probe_timestamp")) or wall_now)
            if len(batch) >= 10_000:
                flush()
        flush()
    finally:
        if out:
            fh.close()


@bots_app.command("eval")
def bots_eval(
    write_docs: bool = typer.Option(False, "--write-docs", help="write the 'bots' section of docs/evaluation.md"),
    quick: bool = typer.Option(False, help="fewer trees: a smoke run, not the published numbers"),
    json_out: Path | None = typer.Option(None, "--json", help="also write all results as JSON here"),
) -> None:
    """Real-data evaluation: 5-fold CV on cresci-rtbust-2019, gilani-2017, kaggle; cross-dataset matrix;
    single model vs specialist ensemble on held-out datasets."""
    import json

    from bastion.evaluation.docs import write_section
    from bastion.models.bots.evaluate import markdown, run_evaluation

    res = run_evaluation(quick=quick, log=typer.echo)
    cmd = "bastion bots eval" + (" --quick" if quick else "") + " --write-docs"
    md = markdown(res, command=cmd)
    typer.echo(md)
    if json_out:
        json_out.write_text(json.dumps(res, indent=2))
    if write_docs:
        write_section(Path("docs/evaluation.md"), "bots", md, title="# Evaluation")


@bots_app.command("train")
def bots_train(
    ship: bool = typer.Option(False, "--ship", help="write into the package's shipped artifacts"),
    models_dir: Path = typer.Option(Path("models"), help="where user-trained models go (without --ship)"),
) -> None:
    """Train bot_profile (cresci + kaggle) and bot_activity (gilani canonical features) on all rows."""
    from bastion.models.bots.train import train_models

    train_models(ship=ship, models_dir=models_dir, log=typer.echo)


def register(app: typer.Typer) -> None:
    app.add_typer(bots_app, name="bots")
    app.command("score-accounts")(score_accounts)
    score_app = getattr(importlib.import_module("bastion.commands.models"), "score_app", None)
    if isinstance(score_app, typer.Typer):
        score_app.command("accounts")(score_accounts)

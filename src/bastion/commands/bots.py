"""Bot-detector commands: ``bastion score-accounts FILE.csv`` (also ``bastion score accounts`` when the
models area's ``score`` group exists), ``bastion bots eval [--write-docs]`` and ``bastion bots train
[--ship]``. Heavy imports stay inside the functions so ``bastion --help`` stays fast."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from bastion.commands import maintainer_only
from bastion.progress import log, progress

bots_app = typer.Typer(help="Bot detector: real-data evaluation and training.", no_args_is_help=True)


def score_accounts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="CSV with Twitter user-object columns (id, screen_name, ...; any may be missing)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write id,score here (default: stdout)"),
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

        with progress("score accounts", unit="accounts") as p:
            for row in iter_user_rows(file):
                batch.append(account_from_user_row(row))
                nows.append(fixed_now or parse_time_ms(row.get("probe_timestamp")) or wall_now)
                if len(batch) >= 10_000:
                    p.advance(len(batch))
                    flush()
            p.advance(len(batch))
            flush()
    finally:
        if out:
            fh.close()


@bots_app.command("eval")
def bots_eval(
    write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the 'bots' section of docs/evaluation.md"),
    quick: bool = typer.Option(False, help="fewer trees: a smoke run, not the published numbers"),
    json_out: Path | None = typer.Option(None, "--json", help="also write all results as JSON here"),
    sim: bool = typer.Option(False, "--sim", help="simulator evaluation through the engine instead of real data"),
    seeds: str = typer.Option("201,202", help="--sim: evaluation seeds (comma-separated)"),
    users: int = typer.Option(3000, help="--sim: accounts per simulation"),
    days: float = typer.Option(1.0, help="--sim: simulated days"),
    bad_scale: float = typer.Option(2.0, help="--sim: adversary cohort size multiplier"),
    work: Path | None = typer.Option(None, help="--sim: folder for simulations and results (default: a temp dir)"),
) -> None:
    """Real-data evaluation: 5-fold CV on cresci-rtbust-2019, gilani-2017, kaggle; cross-dataset matrix;
    single model vs specialist ensemble on held-out datasets. With --sim: per bot cohort and difficulty,
    recall at precision 0.95 and PR-AUC on fresh simulations (with and without context) replayed through
    the engine, before and after the behaviour model."""
    import json

    from bastion.evaluation.bots_sim import merge_bots_section
    from bastion.evaluation.docs import write_section

    doc = Path("docs/evaluation.md")
    if sim:
        from bastion.evaluation.bots_sim import run_sim_evaluation, sim_markdown

        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
        sres = run_sim_evaluation(seed_list, users=users, days=days, bad_scale=bad_scale, work=work, log=log)
        cmd = (f"bastion bots eval --sim --seeds {seeds} --users {users} --days {days:g} --bad-scale {bad_scale:g}"
               " --write-docs")
        md = sim_markdown(sres, cmd)
        typer.echo(md)
        if json_out:
            json_out.write_text(json.dumps(sres, indent=2))
        if write_docs:
            write_section(doc, "bots", merge_bots_section(doc, sim_md=md), title="# Evaluation")
        return
    from bastion.models.bots.evaluate import markdown, run_evaluation

    res = run_evaluation(quick=quick, log=log)
    cmd = "bastion bots eval" + (" --quick" if quick else "") + " --write-docs"
    md = markdown(res, command=cmd)
    typer.echo(md)
    if json_out:
        json_out.write_text(json.dumps(res, indent=2))
    if write_docs:
        write_section(doc, "bots", merge_bots_section(doc, real_md=md), title="# Evaluation")


@bots_app.command("train")
def bots_train(
    ship: bool = typer.Option(False, "--ship", hidden=True, callback=maintainer_only, help="write into the package's shipped artifacts"),
    models_dir: Path = typer.Option(Path("models"), help="where the trained models go"),
    behaviour: bool = typer.Option(False, "--behaviour",
                                   help="train bot_behaviour on simulator truth (seeds 101-104, 107-112) instead"),
    work: Path | None = typer.Option(None, help="--behaviour: folder for the training simulations"),
) -> None:
    """Train bot_profile (cresci + kaggle) and bot_activity (gilani canonical features) on all rows; with
    --behaviour, bot_behaviour (profile + activity + graph features) on training simulations."""
    if behaviour:
        from bastion.evaluation.bots_sim import train_from_sims

        train_from_sims(ship=ship, models_dir=models_dir, work=work, log=log)
        return
    from bastion.models.bots.train import train_models

    train_models(ship=ship, models_dir=models_dir, log=log)


@bots_app.command("calibrate")
def bots_calibrate(
    worlds: str = typer.Option("21-40", help="calibration worlds (training range, 1-999), e.g. 21-40"),
    test_worlds: str = typer.Option("", "--test-worlds",
                                    help="measure reliability/ECE on these worlds too (e.g. 1001-1005)"),
    work: Path = typer.Option(Path("bot-calibration-work"), help="where the worlds' snapshot rows are kept"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the artifact here (default: the shipped one)"),
    img_dir: Path | None = typer.Option(None, "--img-dir", help="--test-worlds: write reliability PNGs here"),
    json_out: Path | None = typer.Option(None, "--json", help="write the fit/measurement report here"),
    default_seeds: str = typer.Option("", "--default-seeds",
                                      help="also measure on default-world simulations with these seeds "
                                           "(e.g. 201,202; even seeds without ip/device)"),
) -> None:
    """Fit the bot calibration artifact (per-tier beta calibration, profile-only evidence cap, OOD box) on
    calibration worlds (1,000 users x 1 day each) and the real bot datasets' validation half; JSON, no pickle."""
    import json

    from bastion.evaluation.bots_calibration import main
    from bastion.evaluation.worlds import parse_worlds

    try:
        ws = parse_worlds(worlds)
        tws = parse_worlds(test_worlds) if test_worlds else []
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if any(w >= 1000 for w in ws):
        typer.echo("error: calibration worlds must come from the training range (1-999)", err=True)
        raise typer.Exit(2)
    try:
        seeds = [int(x) for x in default_seeds.split(",") if x.strip()]
    except ValueError:
        typer.echo("error: --default-seeds takes comma-separated integers", err=True)
        raise typer.Exit(2) from None
    report = main(work, ws, tws, out=out, img_dir=img_dir, log=typer.echo, default_seeds=seeds)
    text = json.dumps(report, indent=1, default=str)
    typer.echo(text)
    if json_out:
        json_out.write_text(text)


def register(app: typer.Typer) -> None:
    app.add_typer(bots_app, name="bots")
    app.command("score-accounts")(score_accounts)
    score_app = getattr(importlib.import_module("bastion.commands.models"), "score_app", None)
    if isinstance(score_app, typer.Typer):
        score_app.command("accounts")(score_accounts)

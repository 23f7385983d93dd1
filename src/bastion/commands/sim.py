"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("sim")
    def sim(
        out: Path = typer.Option(..., "--out", "-o", help="output folder for events.jsonl and truth.json"),
        users: int = typer.Option(20_000, help="accounts in the population (adversaries included)"),
        days: float = typer.Option(2.0, help="simulated days"),
        seed: int | None = typer.Option(None, help="random seed; the same seed gives the same files (default 0, "
                                                    "or N with --world N)"),
        world: int = typer.Option(0, "--world", help="N >= 1: draw the simulator's own parameters from the "
                                                     "documented priors (seeded by N) first, then the population; "
                                                     "1-999 are training worlds (train texts), 1001-1999 test "
                                                     "worlds (test texts). 0: the default world"),
        no_ctx: bool = typer.Option(False, "--no-ctx", help="drop ip and device (a Bluesky-like stream)"),
        text_split: str | None = typer.Option(None, help="dataset split the texts come from: test (evaluation) or "
                                                         "train (default test; a world's own split with --world)"),
        cohort: list[str] = typer.Option([], help="cohort size override NAME=COUNT, repeatable"),
        bad_scale: float = typer.Option(1.0, help="multiply every default cohort size"),
        difficulty_mix: str = typer.Option("0.4,0.35,0.25", help="obvious,moderate,stealthy shares"),
        no_backfill: bool = typer.Option(False, "--no-backfill", help="no profile and follow-graph snapshot at the start"),
        plots: Path | None = typer.Option(None, help="also draw the realism plots into this folder"),
    ) -> None:
        """Simulate a platform: benign users, look-alikes and adversary cohorts, with ground truth."""
        from bastion.sim import DEFAULT_COHORTS, SimConfig, simulate
        from bastion.sim.worlds import world_split

        if world < 0:
            raise typer.BadParameter("--world takes a number >= 1 (0 is the default world)")
        try:
            own_split = world_split(world) if world else "test"
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        text_split = text_split or own_split
        if text_split not in ("test", "train"):
            raise typer.BadParameter("--text-split must be test or train")
        if world and text_split != own_split:
            raise typer.BadParameter(f"world {world} is a {own_split} world: its texts come from the {own_split} "
                                     "split")
        seed = (world if world else 0) if seed is None else seed
        sizes = {}
        for item in cohort:
            name, _, count = item.partition("=")
            if name not in DEFAULT_COHORTS or not count.isdigit():
                raise typer.BadParameter(f"--cohort {item!r}: use NAME=COUNT with NAME in {', '.join(DEFAULT_COHORTS)}")
            sizes[name] = int(count)
        try:
            mix = tuple(float(x) for x in difficulty_mix.split(","))
            assert len(mix) == 3 and sum(mix) > 0
        except (ValueError, AssertionError):
            raise typer.BadParameter("--difficulty-mix takes three numbers, e.g. 0.4,0.35,0.25") from None
        cfg = SimConfig(users=users, days=days, seed=seed, ctx=not no_ctx, text_split=text_split, cohorts=sizes,
                        bad_scale=bad_scale, difficulty_mix=mix, backfill=not no_backfill,  # type: ignore[arg-type]
                        world=world)
        stats = simulate(cfg, out, progress=True)
        typer.echo(
            f"wrote {stats['events']:,} events for {stats['accounts']:,} accounts to {out}/events.jsonl "
            f"in {stats['total_seconds']:.1f}s ({stats['events_per_s']:,.0f} events/s after setup)"
        )
        if plots:
            from bastion.sim.plots import make_plots

            for p in make_plots(out, plots):
                typer.echo(f"plot {p}")

    @app.command("eval")
    def eval_(
        truth: Path | None = typer.Option(None, "--truth", help="truth.json written by bastion sim"),
        results: Path | None = typer.Option(None, "--results", help="results directory (actions/scores/clusters/"
                                                                     "queue)"),
        report: Path | None = typer.Option(None, "--report", help="write an HTML report here"),
        json_out: Path | None = typer.Option(None, "--json", help="write metrics.json here (with --worlds: the "
                                                                  "cross-world report)"),
        worlds: str | None = typer.Option(None, "--worlds", help="cross-world evaluation instead: world numbers, "
                                                                 "e.g. 1001-1010 (the test worlds) or 1,2,5-7; each "
                                                                 "is simulated, replayed through the full engine "
                                                                 "with and without ip/device, and scored; prints "
                                                                 "the worst world per capability"),
        users: int = typer.Option(5_000, help="--worlds: accounts per world"),
        days: float = typer.Option(2.0, help="--worlds: simulated days per world"),
        quick: bool = typer.Option(False, "--quick", help="--worlds: tiny worlds (200 users, 0.2 days) for tests"),
        cache: Path = typer.Option(Path("worlds-cache"), "--cache", help="--worlds: where worlds and their results "
                                                                         "are kept (reused on a rerun)"),
        markdown_out: Path | None = typer.Option(None, "--markdown", help="--worlds: write the tables here"),
        context: str = typer.Option("both", "--context", help="--worlds: both | ctx | noctx (ip/device kept or "
                                                              "stripped)"),
        rerun: bool = typer.Option(False, "--rerun", help="--worlds: replay again even when results are cached"),
        config: Path | None = typer.Option(None, "--config", help="--worlds: settings file (TOML)"),
        events: Path | None = typer.Option(None, "--events", help="the run's events: replayed (as `bastion review "
                                                                  "eval` does) for the review queue's exposure "
                                                                  "prevented, which needs the queue at every hour"),
    ) -> None:
        """Score a results directory against the simulator's ground truth, or (--worlds) many randomized
        worlds, reporting the worst world for every capability."""
        import json

        from bastion.evaluation import evaluate, print_scoreboard

        if worlds is not None:
            _eval_worlds(worlds, users, days, quick, cache, json_out, markdown_out, context, rerun, config)
            return
        if truth is None or results is None:
            raise typer.BadParameter("give --truth and --results (one run), or --worlds (many worlds)")
        if not truth.is_file():
            raise typer.BadParameter(f"truth file {truth} does not exist")
        plots: dict = {}
        review = timeline = None
        if events is not None:
            import tempfile

            from bastion.models.registry import ModelRegistry
            from bastion.review.evaluation import queue_metrics, replay
            from bastion.review.prioritiser import load_prioritiser
            from bastion.settings import Settings

            settings = Settings.load(db_path=Path(tempfile.mkdtemp(prefix="bastion-eval-")) / "review.db")
            model = load_prioritiser(ModelRegistry.default(settings.models_dir))  # what a live queue would load
            from bastion.progress import log, progress

            log(f"replaying {events} for the review queue (ranked by "
                f"{'review_prioritiser v' + str(model.version) if model else 'the formula'})")
            with progress("replay for the review queue"):
                rep = replay(truth, events, settings)
            with progress("review queue: orderings"):
                review = queue_metrics(rep, model)
            if report:
                from bastion.evaluation.harm import harm_over_time

                with progress("review queue: harm captured hour by hour"):
                    timeline = harm_over_time(rep, model)
        from bastion.progress import progress as step

        with step("evaluate"):
            metrics = evaluate(truth, results, plots=plots, review=review, events=events)
        print_scoreboard(metrics)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(metrics, indent=2, default=str))
            typer.echo(f"metrics written to {json_out}")
        if report:
            from bastion.commands.runner import write_demo_report

            write_demo_report(metrics, plots, report, timeline)
            typer.echo(f"report written to {report}")


def _eval_worlds(spec: str, users: int, days: float, quick: bool, cache: Path, json_out: Path | None,
                 markdown_out: Path | None, context: str, rerun: bool, config: Path | None) -> None:
    import json
    import shlex
    import sys

    from bastion.evaluation.worlds import CAPABILITIES, evaluate_worlds, markdown, parse_worlds
    from bastion.progress import log
    from bastion.settings import Settings, SettingsError
    from bastion.sim.worlds import world_split

    try:
        ids = parse_worlds(spec)
        splits = {world_split(w) for w in ids}
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if context not in ("both", "ctx", "noctx"):
        raise typer.BadParameter("--context takes both, ctx or noctx")
    contexts = ("ctx", "noctx") if context == "both" else (context,)
    if quick:
        users, days = 200, 0.2
    if len(splits) > 1:
        typer.echo("warning: the worlds mix training and test worlds; report test worlds on their own", err=True)
    try:
        settings = Settings.load(config)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    log(f"cross-world evaluation: {len(ids)} {'/'.join(sorted(splits))} worlds x {len(contexts)} "
               f"context(s), {users:,} users, {days:g} days each; cache {cache}")
    report = evaluate_worlds(ids, cache, users, days, contexts, settings=settings, rerun=rerun, progress=True,
                             log=log)
    command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report["command"] = command
    for c in contexts:
        typer.echo(f"WORST WORLD ({'with' if c == 'ctx' else 'without'} ip/device):")
        for key, label, _, _, target in CAPABILITIES:
            wv = report["worst"][c][key]
            val = "NA" if wv["value"] is None else (f"{wv['value']:.3f}" if isinstance(wv["value"], float)
                                                    else str(wv["value"]))
            typer.echo(f"  worst {label}: {val} (world {wv['world']}; target {target})")
    md = markdown(report, command)
    typer.echo(md)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, default=str))
        typer.echo(f"cross-world report written to {json_out}")
    if markdown_out:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(md)
        typer.echo(f"tables written to {markdown_out}")

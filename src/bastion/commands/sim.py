"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""

    @app.command("sim")
    def sim(
        out: Path = typer.Option(..., "--out", help="output folder for events.jsonl and truth.json"),
        users: int = typer.Option(20_000, help="accounts in the population (adversaries included)"),
        days: float = typer.Option(2.0, help="simulated days"),
        seed: int = typer.Option(0, help="random seed; the same seed gives the same files"),
        no_ctx: bool = typer.Option(False, "--no-ctx", help="drop ip and device (a Bluesky-like stream)"),
        text_split: str = typer.Option("test", help="dataset split the texts come from: test (evaluation) or train"),
        cohort: list[str] = typer.Option([], help="cohort size override NAME=COUNT, repeatable"),
        bad_scale: float = typer.Option(1.0, help="multiply every default cohort size"),
        difficulty_mix: str = typer.Option("0.4,0.35,0.25", help="obvious,moderate,stealthy shares"),
        no_backfill: bool = typer.Option(False, "--no-backfill", help="no profile and follow-graph snapshot at the start"),
        plots: Path | None = typer.Option(None, help="also draw the realism plots into this folder"),
    ) -> None:
        """Simulate a platform: benign users, look-alikes and adversary cohorts, with ground truth."""
        from bastion.sim import DEFAULT_COHORTS, SimConfig, simulate

        if text_split not in ("test", "train"):
            raise typer.BadParameter("--text-split must be test or train")
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
                        bad_scale=bad_scale, difficulty_mix=mix, backfill=not no_backfill)  # type: ignore[arg-type]
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
        truth: Path = typer.Option(..., "--truth", help="truth.json written by bastion sim"),
        results: Path = typer.Option(..., "--results", help="results directory (actions/scores/clusters/queue)"),
        report: Path | None = typer.Option(None, "--report", help="write an HTML report here"),
        json_out: Path | None = typer.Option(None, "--json", help="write metrics.json here"),
        events: Path | None = typer.Option(None, "--events", help="the run's events: replayed (as `bastion review "
                                                                  "eval` does) for the review queue's exposure "
                                                                  "prevented, which needs the queue at every hour"),
    ) -> None:
        """Score a results directory against the simulator's ground truth."""
        import json

        from bastion.evaluation import evaluate, print_scoreboard

        if not truth.is_file():
            raise typer.BadParameter(f"truth file {truth} does not exist")
        plots: dict = {}
        review = None
        if events is not None:
            import tempfile

            from bastion.models.registry import ModelRegistry
            from bastion.review.evaluation import queue_metrics, replay
            from bastion.review.prioritiser import load_prioritiser
            from bastion.settings import Settings

            settings = Settings.load(db_path=Path(tempfile.mkdtemp(prefix="bastion-eval-")) / "review.db")
            model = load_prioritiser(ModelRegistry.default(settings.models_dir))  # what a live queue would load
            typer.echo(f"replaying {events} for the review queue (ranked by "
                       f"{'review_prioritiser v' + str(model.version) if model else 'the formula'}) ...")
            review = queue_metrics(replay(truth, events, settings), model)
        metrics = evaluate(truth, results, plots=plots, review=review)
        print_scoreboard(metrics)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(metrics, indent=2, default=str))
            typer.echo(f"metrics written to {json_out}")
        if report:
            from bastion.evaluation.report import write_report

            write_report(metrics, plots, report)
            typer.echo(f"report written to {report}")

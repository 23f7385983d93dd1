"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    register_linker(app)


def register_linker(app: typer.Typer) -> None:
    """`bastion linker train|eval|bench`: the repeat-offender linker (issue 7)."""
    linker = typer.Typer(help="repeat offenders: link new accounts to suspended ones", no_args_is_help=True)
    app.add_typer(linker, name="linker")

    @linker.command("train")
    def train_cmd(
        work: Path = typer.Option(Path("runs/linker-train"), help="folder for the training sims (not committed)"),
        out: Path | None = typer.Option(None, help="registry root to save into (default: the shipped artifacts)"),
        users: int = typer.Option(5000), days: float = typer.Option(2.0), evaders: int = typer.Option(60),
    ) -> None:
        """Train the pair model on simulator truth (train text split; fit on seeds 11-13, calibrate on 14-15)."""
        import json

        from bastion.detect.linker.train import make_sim, train
        from bastion.models.registry import PACKAGED_ROOT

        fit = [make_sim(work / f"s{s}", users, days, s, nc, "train", evaders) for s, nc in
               ((11, False), (12, False), (13, True))]
        cal = [make_sim(work / f"s{s}", users, days, s, nc, "train", evaders) for s, nc in ((14, False), (15, True))]
        typer.echo(json.dumps(train(fit, cal, save_to=out or PACKAGED_ROOT), indent=2))

    @linker.command("eval")
    def eval_cmd(
        work: Path = typer.Option(Path("runs/linker-eval"), help="folder for the evaluation sims (not committed)"),
        write_docs: bool = typer.Option(False, "--write-docs", help="write the linker section of docs/evaluation.md"),
        json_out: Path | None = typer.Option(None, "--json"),
    ) -> None:
        """Evaluate on held-out sims (with and without ctx) and the Wikipedia sample."""
        import json

        from bastion.detect.linker.evaluate import markdown, run

        res = run(work)
        typer.echo(json.dumps(res, indent=2))
        if json_out:
            json_out.write_text(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            write_section(REPO_ROOT / "docs" / "evaluation.md", "linker",
                          markdown(res, "bastion linker eval --write-docs"), title="# Evaluation")

    @linker.command("bench")
    def bench_cmd(
        quick: bool = typer.Option(False),
        events: int = typer.Option(0, help="suspended fingerprints in the ANN part (0 = 1,000,000)"),
        write_docs: bool = typer.Option(False, "--write-docs", help="write the linker section of docs/benchmarks.md"),
    ) -> None:
        """`bastion bench linker`, optionally recorded in docs/benchmarks.md."""
        import json

        from bastion.bench.linker import markdown, run

        res = run(events=events or None, quick=quick)
        typer.echo(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            write_section(REPO_ROOT / "docs" / "benchmarks.md", "linker", markdown(res), title="# Benchmarks")

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
        write_docs: bool = typer.Option(False, "--write-docs", help="write the linker section of docs/benchmarks.md"),
    ) -> None:
        """`bastion bench linker`, optionally recorded in docs/benchmarks.md."""
        import json
        import platform

        from bastion.bench.linker import run

        res = run(quick=quick)
        typer.echo(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            a, f = res["ann_vs_exact"], res["full_retrieval"]
            md = "\n".join([
                "## Repeat-offender lookup (linker)", "",
                f"Command: `bastion linker bench --write-docs` (same as `bastion bench linker`), on "
                f"{platform.processor() or platform.machine()}, lookups single-threaded.", "",
                "| what | p50 ms | p99 ms | recall |", "|---|---|---|---|",
                f"| exact brute-force scan, {a['fingerprints']:,} vectors x {a['dim']} | {a['exact_p50_ms']} | "
                f"{a['exact_p99_ms']} | planted parent in top 10: {a['planted_parent_recall_exact']} |",
                f"| usearch HNSW, same vectors | {a['ann_p50_ms']} | {a['ann_p99_ms']} | planted parent: "
                f"{a['planted_parent_recall_ann']}; recall@10 vs exact top 10: {a['recall_at_10_vs_exact']} |",
                f"| full retrieval (identifiers + LSH + ANN), {f['fingerprints']:,} fingerprints | {f['p50_ms']} | "
                f"{f['p99_ms']} | planted parent: {f['planted_parent_recall']} |", "",
                f"Speed-up at p50: {a['speedup_p50']}x; recall ratio {a['recall_ratio']} (target >= 50x at >= 0.95): "
                f"{'met' if res['target_met'] else 'not met'}. HNSW build: {a['ann_build_s']} s.",
            ])
            write_section(REPO_ROOT / "docs" / "benchmarks.md", "linker", md, title="# Benchmarks")

"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.commands import maintainer_only


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    register_linker(app)
    register_clusters(app)


def register_linker(app: typer.Typer) -> None:
    """`bastion linker train|eval|bench`: the repeat-offender linker (issue 7)."""
    linker = typer.Typer(help="repeat offenders: link new accounts to suspended ones", no_args_is_help=True)
    app.add_typer(linker, name="linker")

    @linker.command("train")
    def train_cmd(
        work: Path = typer.Option(Path("runs/linker-train"), help="folder for the training sims (not committed)"),
        out: Path | None = typer.Option(None, "--out", "-o", help="registry root to save into (default: the shipped artifacts)"),
        users: int = typer.Option(5000), days: float = typer.Option(2.0), evaders: int = typer.Option(60),
    ) -> None:
        """Train the pair model and its rank-aware reranker on simulator truth (train text split; stream checks
        and full-history pairs; fit on seeds 11-13, calibrate on 14-15 - never the evaluation seeds 301/302)."""
        import json

        from bastion.detect.linker.train import make_sim, train
        from bastion.models.registry import PACKAGED_ROOT
        from bastion.progress import progress

        sims = {}
        with progress("linker train: training sims", 5, "sims") as p:
            for s, nc in ((11, False), (12, False), (13, True), (14, False), (15, True)):
                p.note(f"seed {s}")
                sims[s] = make_sim(work / f"s{s}", users, days, s, nc, "train", evaders)
                p.advance()
        with progress("linker train: fit and calibrate"):
            res = train([sims[11], sims[12], sims[13]], [sims[14], sims[15]], save_to=out or PACKAGED_ROOT)
        typer.echo(json.dumps(res, indent=2))

    @linker.command("eval")
    def eval_cmd(
        work: Path = typer.Option(Path("runs/linker-eval"), help="folder for the evaluation sims (not committed)"),
        write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the linker section of docs/evaluation.md"),
        json_out: Path | None = typer.Option(None, "--json"),
    ) -> None:
        """Evaluate on held-out sims (with and without ctx) and the Wikipedia sample."""
        import json

        from bastion.detect.linker.evaluate import markdown, run
        from bastion.progress import progress

        with progress("linker eval: held-out sims and the Wikipedia sample"):
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
        index: str = typer.Option("ivf", help="ivf (the linker's own channel) or hnsw (a usearch graph, to compare)"),
        write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the linker section of docs/benchmarks.md"),
    ) -> None:
        """`bastion bench linker`, optionally recorded in docs/benchmarks.md."""
        import json

        from bastion.bench.linker import markdown, run

        if index not in ("ivf", "hnsw"):
            typer.echo(f"error: --index must be ivf or hnsw, not {index!r}", err=True)
            raise typer.Exit(2)
        from bastion.progress import progress

        with progress("linker bench"):
            res = run(events=events or None, quick=quick, index=index)
        typer.echo(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            write_section(REPO_ROOT / "docs" / "benchmarks.md", "linker", markdown(res), title="# Benchmarks")


def register_clusters(app: typer.Typer) -> None:
    """`bastion clusters run|eval|bench`: coordinated clusters (issue 8)."""
    clusters = typer.Typer(help="coordinated clusters: near-duplicates, lockstep, shared infrastructure",
                           no_args_is_help=True)
    app.add_typer(clusters, name="clusters")

    @clusters.command("run")
    def run_cmd(
        events: Path = typer.Argument(..., help="events file (JSON Lines)"),
        out: Path = typer.Option(..., "--out", "-o", help="results directory (clusters.jsonl, queue.jsonl, ...)"),
        ray: bool = typer.Option(False, "--ray", help="run the batch graph jobs on Ray (settings.ray_address, "
                                                      "else a local instance)"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
    ) -> None:
        """Replay EVENTS through the cluster detectors (streaming) and run the batch graph jobs on demand."""
        import json

        from bastion.app import build_runtime
        from bastion.detect.clusters.evaluate import run_clusters
        from bastion.settings import Settings

        settings = Settings.load(config)
        address = (settings.ray_address or "local") if ray else settings.ray_address
        if not events.exists():
            typer.echo(f"error: no such events file: {events}", err=True)
            raise typer.Exit(2)
        rt, summary = run_clusters(events, out, build_runtime, settings, address, progress=True)
        typer.echo(json.dumps({"clusters": summary["clusters"], "open_cases": summary["open_cases"],
                               "events": summary["events"], "stream_s": summary["stream_s"],
                               "batch_s": summary["batch_s"]}, indent=2))

    @clusters.command("bench")
    def bench_cmd(
        quick: bool = typer.Option(False, help="the small sizes (20k posts, 20k accounts / 200k memberships)"),
        ray: bool = typer.Option(True, "--ray/--no-ray", help="also run each job on a local Ray instance (2 workers)"),
        json_out: Path | None = typer.Option(None, "--json", help="also write the results as JSON here"),
        write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the clusters section of docs/benchmarks.md"),
    ) -> None:
        """`bastion bench clusters` (full size: 1M posts, 1M accounts / 10M identifier memberships, 10M lockstep
        actions, a 20k exact sample), progress on stderr; optionally recorded in docs/benchmarks.md."""
        import json

        from bastion.bench.clusters import markdown, run

        res = run(quick=quick, ray=ray)
        typer.echo(json.dumps(res, indent=2))
        if json_out:
            json_out.write_text(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            cmd = "bastion clusters bench" + (" --quick" if quick else "") + ("" if ray else " --no-ray") + " --write-docs"
            write_section(REPO_ROOT / "docs" / "benchmarks.md", "clusters", markdown(res, cmd), title="# Benchmarks")

    @clusters.command("eval")
    def eval_cmd(
        users: int = typer.Option(5000), days: float = typer.Option(2.0), seed: int = typer.Option(1),
        bad_scale: float = typer.Option(1.0, "--bad-scale", help="adversary cohort sizes x this (bastion sim)"),
        difficulty_mix: str = typer.Option("", "--difficulty-mix",
                                           help="obvious,moderate,stealthy shares (bastion sim; default its own)"),
        work: Path = typer.Option(Path("runs/clusters-eval"), help="folder for the sim and results (not committed)"),
        null_model: bool = typer.Option(True, "--null/--no-null", help="also replay with shuffled timestamps"),
        ray: bool = typer.Option(False, "--ray"),
        write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the clusters section of docs/evaluation.md"),
    ) -> None:
        """Simulate, replay through the cluster detectors, and score members against the truth file.

        The thresholds were tuned on seeds 2 to 5 (--bad-scale 2, and for seeds 3 and 5 --difficulty-mix
        0.2,0.3,0.5); the evaluation seed is 1."""
        import json
        import subprocess
        import sys

        from bastion.app import build_runtime
        from bastion.detect.clusters.evaluate import TUNING_NOTE, evaluate, markdown
        from bastion.settings import Settings

        extra = []
        tag = f"sim-{users}-{days}-{seed}"
        if bad_scale != 1.0:
            extra += ["--bad-scale", str(bad_scale)]
            tag += f"-x{bad_scale}"
        if difficulty_mix:
            extra += ["--difficulty-mix", difficulty_mix]
            tag += f"-d{difficulty_mix.replace(',', '_')}"
        sim_dir = work / tag
        if not (sim_dir / "truth.json").exists():
            subprocess.run([sys.executable, "-m", "bastion.cli", "sim", "--users", str(users), "--days", str(days),
                            "--seed", str(seed), "--out", str(sim_dir), *extra], check=True)
        res = evaluate(sim_dir, work / f"out-{tag}", build_runtime, Settings.load(), null_model,
                       "local" if ray else None)
        typer.echo(json.dumps(res, indent=2))
        if write_docs:
            from bastion.evaluation.docs import write_section
            from bastion.settings import REPO_ROOT

            cmd = f"bastion clusters eval --users {users} --days {days} --seed {seed}"
            if extra:
                cmd += " " + " ".join(extra)
            cmd += " --write-docs"
            write_section(REPO_ROOT / "docs" / "evaluation.md", "clusters", markdown(res, cmd, TUNING_NOTE),
                          title="# Evaluation")

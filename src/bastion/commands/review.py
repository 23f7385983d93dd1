"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import typer

users_app = typer.Typer(help="Reviewer UI users (admin, reviewer, analyst).", no_args_is_help=True)
review_app = typer.Typer(help="Review queue: labels from decisions, the learned prioritiser, evaluation.",
                         no_args_is_help=True)


def _settings(config: Path | None, **overrides: object):  # type: ignore[no-untyped-def]
    from bastion.commands.core import _settings as load

    return load(config, **overrides)


def seed_admin(settings, name: str = "admin") -> str:  # type: ignore[no-untyped-def]
    """Create user ``name`` (role admin) with a random password and return the password (for the demo,
    which prints it once). Raises ``ValueError`` when the user exists."""
    from bastion.review.store import ReviewStore
    from bastion.web.security import create_user

    password = secrets.token_urlsafe(15)
    create_user(ReviewStore(settings.db_path), name, "admin", password)
    return password


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="user name"),
    role: str = typer.Option("reviewer", "--role", help="admin | reviewer | analyst"),
    password: str | None = typer.Option(None, "--password", help="password (prompted, hidden, when left out)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Create a UI user; the password is hashed with argon2id and never printed."""
    from bastion.review.store import ReviewStore
    from bastion.web.security import create_user

    settings = _settings(config)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = ReviewStore(settings.db_path)
    try:
        create_user(store, name, role, password)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    store.audit("cli", "user.add", f"user:{name}", {"role": role})
    typer.echo(f"created {role} {name} in {settings.db_path}")


@users_app.command("list")
def users_list(config: Path | None = typer.Option(None, "--config", help="settings file (TOML)")) -> None:
    """List UI users and their roles."""
    from bastion.review.store import ReviewStore

    for u in ReviewStore(_settings(config).db_path).users():
        flag = "\tdisabled" if u["disabled"] else ""
        typer.echo(f"{u['name']}\t{u['role']}{flag}")


@review_app.command("export-labels")
def export_labels(
    out: Path = typer.Option(Path("labels.jsonl"), "--out", "-o", help="JSON Lines file to write"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Write reviewer decisions as training labels ({"subject", "bad", "label", ...} per line)."""
    from bastion.review.service import label_row
    from bastion.review.store import ReviewStore

    store = ReviewStore(_settings(config).db_path)
    n = 0
    with open(out, "w", encoding="utf-8") as fh:
        for d in store.decisions():
            if d["verdict"] != "escalate":
                fh.write(json.dumps(label_row(d)) + "\n")
                n += 1
    typer.echo(f"wrote {n} labels to {out}")


@review_app.command("train-prioritiser")
def train_prioritiser(
    out: Path | None = typer.Option(None, "--out", help="model file (default MODELS_DIR/review_prioritiser.pkl)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Retrain the learned prioritiser (LightGBM + isotonic calibration) from reviewer decisions."""
    from bastion.review.prioritiser import train_from_decisions
    from bastion.review.store import ReviewStore

    settings = _settings(config)
    decisions = ReviewStore(settings.db_path).decisions()
    try:
        model = train_from_decisions(decisions)
    except ValueError as exc:
        typer.echo(f"error: {exc} ({len(decisions)} decisions so far)", err=True)
        raise typer.Exit(2) from None
    path = model.save(out or Path(settings.models_dir) / "review_prioritiser.pkl")
    typer.echo(f"trained on {model.n_train_} decisions; saved {path}")


@review_app.command("eval")
def review_eval(
    truth: Path = typer.Option(..., "--truth", help="truth.json written by bastion sim"),
    events: Path | None = typer.Option(None, "--events", help="replay these events first (full comparison, "
                                                               "learned prioritiser included)"),
    results: Path | None = typer.Option(None, "--results", help="or score an existing results directory"),
    capacity: int = typer.Option(10, "--capacity", "-k", help="reviewer capacity K, cases per hour"),
    docs: Path | None = typer.Option(None, "--docs", help="write the review section of this evaluation.md"),
    json_out: Path | None = typer.Option(None, "--json", help="write the metrics here"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Exposure prevented at K cases/hour against FIFO and report-count orderings; precision@100; the
    learned prioritiser against the formula."""
    import tempfile

    from bastion.review.evaluation import evaluate_review, markdown

    if (events is None) == (results is None):
        raise typer.BadParameter("give one of --events or --results")
    if results is not None:
        metrics = evaluate_review(truth, results, capacities=(capacity,))
        cmd = f"bastion review eval --truth {truth} --results {results} -k {capacity}"
    else:
        from bastion.app import build_runtime
        from bastion.review.service import attach_review
        from bastion.sources.files import items

        tmp = Path(tempfile.mkdtemp(prefix="bastion-review-eval-"))
        settings = _settings(config, db_path=tmp / "review.db")
        rt = build_runtime(settings, out_dir=None)
        if not any(getattr(d, "name", "") == "rules" for d in rt.engine.detectors):
            from bastion.app import DEFAULT_RULES_DIR
            from bastion.rules import RulesDetector

            rt.engine.detectors.append(RulesDetector.from_dir(settings.rules_dir or DEFAULT_RULES_DIR, rt.registry))
        attach_review(rt, settings, record_events=0)
        rt.run(items(events, "canonical"))
        rt.run_batch_detectors()
        metrics = evaluate_review(truth, rt, capacities=(capacity,))
        cmd = f"bastion review eval --truth {truth} --events {events} -k {capacity}"
    typer.echo(json.dumps(metrics, indent=2, default=str))
    if json_out:
        json_out.write_text(json.dumps(metrics, indent=2, default=str))
    if docs:
        from bastion.evaluation.docs import write_section

        write_section(docs, "review", markdown(metrics, cmd, capacity), title="# Evaluation")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(users_app, name="users")
    app.add_typer(review_app, name="review")

"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import typer

from bastion.commands import maintainer_only

users_app = typer.Typer(help="Reviewer UI users (admin, reviewer, analyst).", no_args_is_help=True)
review_app = typer.Typer(help="Review queue: labels from decisions, the learned prioritiser, evaluation.",
                         no_args_is_help=True)


def _settings(config: Path | None, **overrides: object):  # type: ignore[no-untyped-def]
    from bastion.commands.core import _settings as load

    return load(config, **overrides)


def seed_admin(settings, name: str = "admin") -> str:  # type: ignore[no-untyped-def]
    """Create user ``name`` (role admin) with a random password and return the password (for the demo,
    which prints it once). Raises ``ValueError`` when the user exists."""
    from bastion.review.store import open_review_store
    from bastion.web.security import create_user

    password = secrets.token_urlsafe(15)
    create_user(open_review_store(settings), name, "admin", password)
    return password


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="user name"),
    role: str = typer.Option("reviewer", "--role", help="admin | reviewer | analyst"),
    password: str | None = typer.Option(None, "--password", help="password (prompted, hidden, when left out)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Create a UI user; the password is hashed with argon2id and never printed."""
    from bastion.review.store import open_review_store
    from bastion.web.security import create_user

    settings = _settings(config)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = open_review_store(settings)
    try:
        create_user(store, name, role, password)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    store.audit("cli", "user.add", f"user:{name}", {"role": role})
    typer.echo(f"created {role} {name} in {store.path}")


@users_app.command("list")
def users_list(config: Path | None = typer.Option(None, "--config", help="settings file (TOML)")) -> None:
    """List UI users and their roles."""
    from bastion.review.store import open_review_store

    for u in open_review_store(_settings(config)).users():
        flag = "\tdisabled" if u["disabled"] else ""
        typer.echo(f"{u['name']}\t{u['role']}{flag}")


@review_app.command("export-sor")
def export_sor(
    out: Path = typer.Option(Path("statements.jsonl"), "--out", "-o", help="JSON Lines file to write"),
    since_ms: int = typer.Option(0, "--since-ms", help="only statements created at or after this time (ms)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Write every statement of reasons (EU DSA Transparency Database format), one JSON object per line."""
    from bastion.review.sor import SorStore
    from bastion.review.store import open_review_store

    store = open_review_store(_settings(config))
    rows = SorStore(store).export_rows(since_ms)
    with open(out, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    store.audit("cli", "sor.export", "", {"out": str(out), "n": len(rows)})
    typer.echo(f"wrote {len(rows)} statements of reasons to {out}")


@review_app.command("export-labels")
def export_labels(
    out: Path = typer.Option(Path("labels.jsonl"), "--out", "-o", help="JSON Lines file to write"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Write reviewer decisions as training labels ({"subject", "bad", "label", ...} per line)."""
    from bastion.review.service import label_row
    from bastion.review.store import open_review_store

    store = open_review_store(_settings(config))
    n = 0
    with open(out, "w", encoding="utf-8") as fh:
        for d in store.decisions():
            if d["verdict"] != "escalate":
                fh.write(json.dumps(label_row(d)) + "\n")
                n += 1
    typer.echo(f"wrote {n} labels to {out}")


def _model_registry(settings, ship: bool = False):  # type: ignore[no-untyped-def]
    from bastion.models.registry import PACKAGED_ROOT, ModelRegistry

    return ModelRegistry.default(settings.models_dir), (PACKAGED_ROOT if ship else None)


@review_app.command("train-prioritiser")
def train_prioritiser(
    events: Path | None = typer.Option(None, "--events", help="train on simulated decisions: replay this run "
                                                             "(every case decided by --truth)"),
    truth: Path | None = typer.Option(None, "--truth", help="truth.json of the --events run"),
    worlds: str | None = typer.Option(None, "--worlds", help="train across these randomized training worlds "
                                                            "(e.g. 1-30; simulated decisions, 1-999 only)"),
    val_worlds: str | None = typer.Option(None, "--val-worlds", help="with --worlds: training worlds (e.g. "
                                                                    "31-40) on which the priority shape is chosen"),
    users: int = typer.Option(600, "--users", min=50, help="with --worlds: users per world"),
    days: float = typer.Option(1.0, "--days", min=0.05, max=7.0, help="with --worlds: days per world"),
    cache: Path | None = typer.Option(None, "--cache", help="with --worlds: where the worlds and their replays "
                                                           "are kept (default: a temporary folder)"),
    report: Path | None = typer.Option(None, "--json", help="with --worlds: write the shapes tried here"),
    ship: bool = typer.Option(False, "--ship", hidden=True, callback=maintainer_only, help="write into the package's shipped artifacts"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Retrain the learned prioritiser (LightGBM + isotonic calibration, per-source precision) from reviewer
    decisions - the decisions table, simulated decisions on a simulator run, or simulated decisions across
    randomized training worlds (--worlds, the priority shape chosen on --val-worlds) - into the model registry
    ($BASTION_MODELS_DIR) as review_prioritiser; a live queue ranks with the newest one."""
    from bastion.review.prioritiser import train_from_decisions
    from bastion.review.store import open_review_store

    settings = _settings(config)
    if (events is None) != (truth is None):
        raise typer.BadParameter("give --events and --truth together (or neither: the decisions table)")
    if worlds is not None and events is not None:
        raise typer.BadParameter("give --worlds or --events/--truth, not both")
    if val_worlds is not None and worlds is None:
        raise typer.BadParameter("--val-worlds needs --worlds")
    if worlds is not None:
        import tempfile

        from bastion.evaluation.worlds import parse_worlds
        from bastion.review.worlds import choose_shape, train_across_worlds, world_replays

        try:
            train_ws = parse_worlds(worlds)
            val_ws = parse_worlds(val_worlds) if val_worlds else []
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if max(train_ws + val_ws) > 999:
            raise typer.BadParameter("test worlds (1001 and up) never train or tune anything: use 1-999")
        if set(train_ws) & set(val_ws):
            raise typer.BadParameter("--worlds and --val-worlds must be disjoint")
        where = cache or Path(tempfile.mkdtemp(prefix="bastion-prioritiser-worlds-"))
        typer.echo(f"replaying {len(train_ws)} training worlds ({users} users, {days:g} day each) in {where} ...")
        model = train_across_worlds(world_replays(train_ws, where, users, days, log=typer.echo))
        chosen = None
        if val_ws:
            typer.echo(f"choosing the priority shape on {len(val_ws)} validation worlds ...")
            chosen = choose_shape(model, world_replays(val_ws, where, users, days, log=typer.echo), log=typer.echo)
            if report:
                report.write_text(json.dumps(chosen, indent=1))
            typer.echo(f"chosen shape: {model.shape}")
        model.meta_["trained_on"] = {"worlds": worlds, "val_worlds": val_worlds, "users": users, "days": days,
                                     "decisions": "simulated decisions (every case, every hour it was open, "
                                                  "decided by the truth) on randomized training worlds"}
        if chosen is not None:
            model.meta_["validation"] = {k: v for k, v in chosen["chosen"].items() if k != "shape"}
        model.meta_["command"] = (f"bastion review train-prioritiser --worlds {worlds}"
                                  + (f" --val-worlds {val_worlds}" if val_worlds else "")
                                  + f" --users {users} --days {days:g}" + (" --ship" if ship else ""))
        source = f"simulated decisions on worlds {worlds}"
    elif events is not None and truth is not None:
        import tempfile

        from bastion.review.evaluation import replay, sim_command, train_on_replay

        typer.echo(f"replaying {events} ...")
        run_settings = _settings(config, db_path=Path(tempfile.mkdtemp(prefix="bastion-review-train-")) / "r.db")
        model = train_on_replay(replay(truth, events, run_settings))
        model.meta_["trained_on"].update(events=str(events), truth=str(truth))
        # how to make it again: the simulated run, then this command
        model.meta_["command"] = " && ".join((
            sim_command(model.meta_["trained_on"], events.parent.as_posix()),
            f"bastion review train-prioritiser --events {events} --truth {truth}" + (" --ship" if ship else "")))
        source = f"simulated decisions on {events}"
    else:
        decisions = open_review_store(settings).decisions()
        try:
            model = train_from_decisions(decisions)
        except ValueError as exc:
            typer.echo(f"error: {exc} ({len(decisions)} decisions so far)", err=True)
            raise typer.Exit(2) from None
        model.meta_["trained_on"] = {"decisions": len(decisions), "db": str(settings.db_path)}
        model.meta_["command"] = "bastion review train-prioritiser" + (" --ship" if ship else "")
        source = f"{model.n_train_} decisions"
    registry, root = _model_registry(settings, ship)
    path = model.save(registry, root=root)
    top = sorted(model.importances_.items(), key=lambda kv: -kv[1])[:5]
    typer.echo(f"trained on {source} ({model.n_train_} rows, {model.n_cases_} cases); saved {path}")
    typer.echo("top features (gain): " + ", ".join(f"{k} {v:,.0f}" for k, v in top))


@review_app.command("eval")
def review_eval(
    truth: Path = typer.Option(..., "--truth", help="truth.json written by bastion sim"),
    events: Path = typer.Option(..., "--events", help="the run's events, replayed through the engine"),
    capacity: int = typer.Option(10, "--capacity", "-k", help="reviewer capacity K, cases per hour"),
    version: str | None = typer.Option(None, "--model-version", help="review_prioritiser version (default: "
                                                                     "the newest in the registry)"),
    docs: Path | None = typer.Option(None, "--docs", help="write the review section of this evaluation.md"),
    json_out: Path | None = typer.Option(None, "--json", help="write the metrics here"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Exposure prevented at K cases/hour (time-consistent: every hour ranks what was known then) against
    FIFO and report-count orderings; precision@100; the learned prioritiser (trained on another run with
    `bastion review train-prioritiser --events`) against the formula."""
    from bastion.models.registry import ModelError
    from bastion.review.evaluation import evaluate_review, markdown
    from bastion.review.prioritiser import MODEL_NAME, LearnedPrioritiser

    settings = _settings(config)
    registry, _ = _model_registry(settings)
    try:
        model: LearnedPrioritiser | None = LearnedPrioritiser.from_artifact(registry.load(MODEL_NAME, version))
    except ModelError as exc:
        typer.echo(f"no learned prioritiser ({exc}); comparing the formula only", err=True)
        model = None
    if model is not None:
        trained = (model.meta_.get("trained_on") or {})
        seed = json.loads(truth.read_text()).get("meta", {}).get("seed")
        if trained.get("seed") is not None and trained.get("seed") == seed:
            typer.echo(f"error: review_prioritiser v{model.version} was trained on seed {seed}, the run being "
                       "evaluated; train it on another run", err=True)
            raise typer.Exit(2)
    import tempfile

    run_settings = _settings(config, db_path=Path(tempfile.mkdtemp(prefix="bastion-review-eval-")) / "review.db")
    from bastion.progress import progress

    with progress("review eval: replay the run and rank it hour by hour"):
        metrics = evaluate_review(truth, events, capacities=(capacity,), model=model, settings=run_settings)
    cmd = f"bastion review eval --truth {truth} --events {events} -k {capacity}"
    from bastion.review.evaluation import sim_command

    commands = []
    tr = (model.meta_.get("trained_on") or {}) if model is not None else {}
    made = model.meta_.get("command") if model is not None else None
    if made:  # the commands that made the model (recorded in its metadata)
        commands.append(made)
    elif tr.get("events"):
        commands.append(sim_command(tr, Path(tr["events"]).parent.as_posix()))
    commands.append(sim_command(json.loads(truth.read_text()).get("meta", {}), truth.parent.as_posix()))
    if tr.get("events") and not made:
        commands.append(f"bastion review train-prioritiser --truth {tr['truth']} --events {tr['events']}")
    metrics["commands"] = commands
    typer.echo(json.dumps(metrics, indent=2, default=str))
    if json_out:
        json_out.write_text(json.dumps(metrics, indent=2, default=str))
    if docs:
        from bastion.evaluation.docs import write_section

        write_section(docs, "review", markdown(metrics, cmd, capacity), title="# Evaluation")


@review_app.command("team-sim")
def team_sim(
    worlds: str = typer.Option("1001-1003", "--worlds", help="world numbers, e.g. 1001-1003 or 1001,1005 "
                                                          "(test worlds are 1001+; training worlds 1-999)"),
    users: int = typer.Option(3000, "--users", min=50, help="users per world"),
    days: float = typer.Option(1.0, "--days", min=0.05, max=7.0, help="days per world"),
    reviewers: int = typer.Option(5, "--reviewers", min=2, max=200, help="reviewers in the team"),
    shift_hours: float = typer.Option(8.0, "--shift-hours", min=0.5, max=24.0, help="hours per shift"),
    step_min: float = typer.Option(10.0, "--step-min", min=1.0, max=60.0,
                                   help="minutes between snapshots of the queue (how often it re-ranks)"),
    seed: int = typer.Option(0, "--seed", help="seed of the team (reviewer speeds, error rates, every draw)"),
    orderings: str = typer.Option("learned,fifo,report_count", "--orderings",
                                  help="comma list of learned, formula_feedback, fifo, report_count"),
    version: str | None = typer.Option(None, "--model-version", help="review_prioritiser version (default: "
                                                                     "the newest in the registry)"),
    cache: Path = typer.Option(Path("worlds-cache"), "--cache", help="directory for the simulated worlds"),
    json_out: Path | None = typer.Option(None, "--json", help="write the full report here"),
    docs: Path | None = typer.Option(None, "--docs", help="write the \"Team review simulation\" section of this "
                                                          "evaluation.md"),
    section: str = typer.Option("teamsim", "--docs-section", help="name of the section --docs writes (between "
                                                                  "<!-- BEGIN name --> and <!-- END name -->)"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML)"),
) -> None:
    """Team review simulation: a team of simulated reviewers (log-normal decision times, per-reviewer error
    rates, staggered shifts) works each world's review queue, replayed through the engine, in the learned
    (harm) order, FIFO and report-count order; reports harm prevented per reviewer-hour, time to first review,
    time to detect and the share of wrong enforcements overturned on appeal, per world and the worst world."""
    import tempfile

    from bastion.evaluation.team import (
        TEAM_ORDERINGS,
        TeamConfig,
        check_model,
        evaluate_worlds,
        markdown,
        to_json,
    )
    from bastion.evaluation.worlds import parse_worlds
    from bastion.models.registry import ModelError
    from bastion.review.prioritiser import MODEL_NAME, LearnedPrioritiser

    try:
        ws = parse_worlds(worlds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--worlds") from None
    names = tuple(o.strip() for o in orderings.split(",") if o.strip())
    bad = [o for o in names if o not in (*TEAM_ORDERINGS, "formula_feedback", "learned_static")]
    if bad or not names:
        raise typer.BadParameter(f"unknown ordering(s) {bad}: use learned, formula_feedback, fifo, report_count",
                                 param_hint="--orderings")
    if not section.replace("-", "").replace("_", "").isalnum():
        raise typer.BadParameter("letters, digits, - and _ only", param_hint="--docs-section")
    settings = _settings(config)
    registry, _ = _model_registry(settings)
    model: LearnedPrioritiser | None
    try:
        model = LearnedPrioritiser.from_artifact(registry.load(MODEL_NAME, version))
    except ModelError as exc:
        typer.echo(f"no learned prioritiser ({exc}); the harm formula with its feedback loop ranks", err=True)
        model = None
    try:
        check_model(model, ws)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    cfg = TeamConfig(reviewers=reviewers, shift_hours=shift_hours, seed=seed)
    run_settings = _settings(config, db_path=Path(tempfile.mkdtemp(prefix="bastion-team-sim-")) / "review.db")
    typer.echo(f"team simulation: {reviewers} reviewers, {len(ws)} world(s), {users:,} users, {days:g} day(s); "
               f"orderings {', '.join(names)}; prioritiser "
               f"{'v' + str(model.version) if model is not None else 'none (formula)'}")
    report = evaluate_worlds(ws, cache, users, days, cfg, model, step_min, names, run_settings,
                             log=lambda s: typer.echo(s))
    cmd = (f"bastion review team-sim --worlds {worlds} --users {users} --days {days:g} --reviewers {reviewers}"
           + (f" --shift-hours {shift_hours:g}" if shift_hours != 8.0 else "")
           + (f" --step-min {step_min:g}" if step_min != 10.0 else "") + (f" --seed {seed}" if seed else ""))
    report["command"] = cmd
    for k, v in report["comparison"].get("worst", {}).items():
        typer.echo(f"worst world {v['world']}: {k} {v['value']}")
    if json_out:
        json_out.write_text(to_json(report))
        typer.echo(f"wrote {json_out}")
    if docs:
        from bastion.evaluation.docs import write_section

        write_section(docs, section, markdown(report, cmd, full=section == "teamsim"), title="# Evaluation")
        typer.echo(f"wrote the team simulation section of {docs}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(users_app, name="users")
    app.add_typer(review_app, name="review")

"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    rules = typer.Typer(help="The rule language: check, test, backtest, list features.", no_args_is_help=True)
    app.add_typer(rules, name="rules")

    @rules.command("check")
    def check(directory: Path = typer.Argument(Path("rules"), help="rules directory")) -> None:
        """Validate every rule file (syntax, types, features, lists, effects); exit 1 on any error."""
        from bastion.features.builtin import build_registry
        from bastion.rules import RuleSetError, load_rules

        try:
            rs = load_rules(directory, build_registry())
        except RuleSetError as exc:
            for err in exc.errors:
                typer.echo(str(err), err=True)
            typer.echo(f"{len(exc.errors)} error(s)", err=True)
            raise typer.Exit(1) from None
        s = rs.summary()
        typer.echo(f"ok: {s['rules']} rules ({s['enforce']} enforce, {s['shadow']} shadow, {s['off']} off), "
                   f"{s['counters']} counters, {s['lists']} lists, version {s['version']}")
        for name, why in s["disabled"].items():
            typer.echo(f"  disabled until models load: {name}: {why}")

    @rules.command("publish")
    def publish(
        directory: Path = typer.Argument(..., help="rules directory to publish"),
        to: str = typer.Option(..., "--to", help="the deployment's redis://HOST:PORT/DB?prefix=NAME: (the workers' "
                                                 "--state)"),
        by: str | None = typer.Option(None, "--by", help="who publishes (recorded in the audit log; default: the "
                                                       "OS user)"),
        config: Path | None = typer.Option(None, "--config", help="settings file (TOML; BASTION_REVIEW_DB names the "
                                                                  "audit log's store)"),
    ) -> None:
        """Validate a rule pack once and make it the version every stream worker runs (no restarts): each
        worker swaps it in between batches within about a second. A pack with errors is refused (exit 1) and
        the running version stays. The publication is written to the audit log."""
        import getpass

        from bastion.features.builtin import build_registry
        from bastion.review.store import open_review_store
        from bastion.rules import RuleSetError
        from bastion.rules.published import publish as do_publish
        from bastion.settings import Settings
        from bastion.sources.redis_streams import connect

        who = by or getpass.getuser()
        settings = Settings.load(config)
        store = open_review_store(settings)
        client, prefix = connect(to)
        try:
            result = do_publish(client, prefix, directory, build_registry(), who)
        except RuleSetError as exc:
            for err in exc.errors:
                typer.echo(str(err), err=True)
            typer.echo(f"{len(exc.errors)} error(s): not published; the workers keep their rules", err=True)
            store.audit(who, "rules.publish_refused", f"rules:{directory}", {"errors": [str(e) for e in exc.errors][:50]})
            raise typer.Exit(1) from None
        store.audit(who, "rules.publish", f"rules:{result['version']}", result)
        typer.echo(f"published rules version {result['version']} ({result['rules']} rules; added "
                   f"{len(result['added'])}, modified {len(result['modified'])}, removed {len(result['removed'])} "
                   f"files; previous {result['previous'] or 'none'})")

    @rules.command("test")
    def test(directory: Path = typer.Argument(Path("rules"), help="rules directory"),
             require_all: bool = typer.Option(True, help="fail when a rule has no fixture case")) -> None:
        """Run the fixture cases (events in, expected effects out); exit 1 on any failure."""
        from bastion.rules import RuleSetError
        from bastion.rules.fixtures import rules_without_tests, run_fixtures

        try:
            results = run_fixtures(directory)
        except RuleSetError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        failed = [r for r in results if not r.ok]
        for r in failed:
            typer.echo(f"FAIL {r.path}:{r.line}: {r.name}", err=True)
            for f in r.failures:
                typer.echo(f"    {f}", err=True)
        missing = rules_without_tests(directory) if require_all else []
        for name in missing:
            typer.echo(f"NO TEST for rule {name}", err=True)
        typer.echo(f"{len(results) - len(failed)}/{len(results)} cases passed"
                   + (f"; {len(missing)} rule(s) without a case" if missing else ""))
        if failed or missing:
            raise typer.Exit(1)

    @rules.command("backtest")
    def backtest(
        directory: Path = typer.Argument(..., help="rules directory"),
        events: Path = typer.Argument(..., help="events, JSON Lines"),
        truth: Path | None = typer.Option(None, help="truth.json (simulator) or reviewer decisions (JSONL)"),
        against: Path | None = typer.Option(None, help="an older rules directory to diff against"),
        json_out: Path | None = typer.Option(None, "--json", help="write the full report here"),
        show: int = typer.Option(20, help="diff rows to print"),
    ) -> None:
        """Replay EVENTS through a fresh engine (counters and labels rebuilt as of each moment): hits per rule,
        precision/recall against truth, and with --against the subjects that gain or lose effects."""
        from bastion.rules import RuleSetError
        from bastion.rules.backtest import backtest as run

        try:
            report = run(directory, events, truth, against, progress=True)
        except RuleSetError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        typer.echo(f"rules {report['version']}: {report['events']} events, {report['events_per_s']} events/s")
        quality = report.get("quality", {}).get("rules", {})
        for name, hits in report["hits"].items():
            q = quality.get(name, {})
            prec = q.get("precision")
            typer.echo(f"  {name:32s} hits {hits:7d}  subjects {q.get('subjects', 0):6d}"
                       + (f"  precision {prec:.3f}" if prec is not None else ""))
        if "quality" in report:
            q = report["quality"]
            typer.echo(f"accounts: precision {q['account_precision']} recall {q['account_recall']}; "
                       f"posts: precision {q['post_precision']} recall {q['post_recall']}")
        if "diff" in report:
            d = report["diff"]
            typer.echo(f"diff {d['old_version']} -> {d['new_version']}: +{d['n_gained']} / -{d['n_lost']} effects")
            for row in d["gained"][:show]:
                typer.echo(f"  + {row['subject']} {row['action']} {row['label']} ({row['rule']})")
            for row in d["lost"][:show]:
                typer.echo(f"  - {row['subject']} {row['action']} {row['label']} ({row['rule']})")
            for rule, ch in d["hits_changed"].items():
                typer.echo(f"  hits {rule}: {ch['old']} -> {ch['new']}")
        if json_out:
            json_out.write_text(json.dumps(report, indent=2, default=str))

    @rules.command("features")
    def features(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """List the features rules can read (name, type, cost, doc), model features included."""
        from bastion.features.builtin import build_registry
        from bastion.rules.compiler import BUILTINS, MODEL_FEATURES, type_name

        reg = build_registry()
        rows = [(s.name, type_name(s.type), s.cost, s.doc) for s in reg]
        rows += [(n, t, "model", d + " (registered when models load)") for n, (t, d) in MODEL_FEATURES.items()
                 if n not in reg]
        if as_json:
            typer.echo(json.dumps([dict(zip(("name", "type", "cost", "doc"), r, strict=True)) for r in rows],
                                  indent=2))
            return
        for name, t, cost, doc in rows:
            typer.echo(f"{name:30s} {t:6s} {cost:6s} {doc}")
        typer.echo(f"\nfunctions: {', '.join(BUILTINS)}")

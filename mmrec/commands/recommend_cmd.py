"""`mmrec interactions import`, `mmrec recommend`, `mmrec evaluate`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from mmrec.commands.console import console, err_console, print_json, printable
from mmrec.commands.engine import check_engine, engine_options
from mmrec.commands.options import db_option, make_catalog

# Literal, so that the CLI starts without loading the kernels (numpy); a test keeps it
# equal to mmrec.scoring.BACKENDS.
BACKENDS = ("auto", "numpy", "cpu", "cuda", "torch")

MAX_REJECTED_SHOWN = 20
SENTIMENT_HELP = ("Let comment sentiment weigh events (praise strengthens, complaints push away; "
                  "see docs/recommend.md); off: every comment counts as a plain comment event.")


def rerank_options(f: Any) -> Any:
    """--diversity/--popularity-weight/--freshness-weight/--exclude-seen/--backend."""
    for opt in reversed([
        click.option("--diversity", type=click.FloatRange(0, 1), default=0.2, show_default=True,
                     help="MMR diversity: 0 = pure score order, 1 = as varied as possible."),
        click.option("--popularity-weight", type=click.FloatRange(min=0), default=0.05,
                     show_default=True, help="Bonus for items many users liked."),
        click.option("--freshness-weight", type=click.FloatRange(min=0), default=0.05,
                     show_default=True, help="Bonus for recently ingested items."),
        click.option("--half-life-days", type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, help="Recency half-life of a user's history."),
        click.option("--exclude-seen/--include-seen", default=True, show_default=True,
                     help="Leave out items already in the user's history."),
        click.option("--backend", type=click.Choice(BACKENDS), default="auto",
                     show_default=True,
                     help="Scoring backend (auto: torch GEMM on a GPU, else the NumPy/Numba CPU kernels)."),
    ]):
        f = opt(f)
    return f


def build_options(diversity: float, popularity_weight: float, freshness_weight: float,
                  half_life_days: float, exclude_seen: bool, backend: str) -> tuple[Any, Any]:
    from mmrec.recommend import options_from

    return options_from(diversity=diversity, popularity_weight=popularity_weight,
                        freshness_weight=freshness_weight, half_life_days=half_life_days,
                        exclude_seen=exclude_seen, backend=backend)


def _positive_k(k: int) -> int:
    if k <= 0:
        raise click.BadParameter(f"{k} is not a positive number of results", param_hint="--k")
    return k


@click.group("interactions")
def interactions_group() -> None:
    """User interactions (views, likes, skips, comments...) that recommendations learn from."""


@interactions_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--skip-bad", is_flag=True,
              help="Store the good rows even when some are rejected (default: store nothing).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(file: Path, db: Path | None, skip_bad: bool, as_json: bool) -> None:
    """Import FILE (CSV with a header, or JSONL) with columns user_id, item, event, value,
    timestamp, text. `item` is a catalogued path or item id; `event` one of view, like,
    dislike, skip, comment, share; `value` an optional watch/listen fraction (0..1);
    `timestamp` ISO-8601 or epoch seconds; `text` an optional comment."""
    report = make_catalog(db).import_interactions(file, skip_bad=skip_bad)
    if as_json:
        print_json({"path": report.path, "rows": report.rows, "imported": report.imported,
                    "already_stored": report.already_stored, "written": report.written,
                    "rejected": [{"line": r.line, "reason": r.reason} for r in report.rejected]})
    for r in report.rejected[:MAX_REJECTED_SHOWN]:
        err_console.print(f"{escape(printable(str(file)))}:{r.line}: {escape(printable(r.reason))}")
    if len(report.rejected) > MAX_REJECTED_SHOWN:
        err_console.print(f"... and {len(report.rejected) - MAX_REJECTED_SHOWN} more rejected lines")
    if not report.written:
        raise click.ClickException(
            f"{len(report.rejected)} of {len(report.rejected) + report.rows} rows rejected; nothing "
            "was stored: fix the lines above, or pass --skip-bad to store the good rows")
    if not as_json:
        console.print(f"{report.imported} interactions imported from {file}"
                      + (f", {report.already_stored} already stored" if report.already_stored else "")
                      + (f", {len(report.rejected)} rejected" if report.rejected else ""))


def recommendations_table(result: Any, explain: bool) -> Table:
    recs = result.recommendations
    modalities = list(dict.fromkeys(m for r in recs for m in r.scores))
    table = Table(title=f"for {escape(printable(result.user))}"
                        + (f" ({result.history} interactions)" if result.history else ""))
    for col in ("#", "score", *modalities):
        table.add_column(col, justify="right")
    table.add_column("title")
    table.add_column("path", overflow="fold")
    if explain:
        table.add_column("why", overflow="fold")
    for r in recs:
        row = [str(r.rank), f"{r.score:.3f}", *[f"{r.scores.get(m, 0.0):.3f}" for m in modalities],
               escape(printable(result.items.titles[r.item_index] or "")),
               escape(printable(result.items.paths[r.item_index]))]
        if explain:
            row.append(escape(printable(r.explanation or "")))
        table.add_row(*row)
    return table


@click.command("recommend")
@click.option("--user", default=None, help="A user id from the imported interactions.")
@click.option("--interests", default=None, metavar="TEXT",
              help="Comma-separated interests: a new user, or a prior for --user.")
@click.option("--all-users", is_flag=True, help="Recommend for every user; needs --out.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Parquet file for --all-users (--engine ray: a directory of Parquet parts, "
                   "or a Lance dataset when it ends in .lance).")
@db_option
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="How many per user.")
@click.option("--explain", is_flag=True, help="Say why: per-modality shares and the history item "
                                              "each recommendation resembles.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--sentiment", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help=SENTIMENT_HELP)
@rerank_options
@engine_options(gpus=False)
def recommend_command(user: str | None, interests: str | None, all_users: bool, out: Path | None,
                      db: Path | None, k: int, explain: bool, as_json: bool, sentiment: str,
                      engine: str, address: str | None, ray_workers: int | None, **rerank: Any) -> None:
    """What a user should watch or hear next, ranked, reranked and (with --explain) explained."""
    options, user_config = build_options(**rerank)
    user_config = replace(user_config, sentiment=sentiment == "on")
    check_engine(engine, address, ray_workers)
    catalog = make_catalog(db)
    if all_users:
        if out is None or user or interests:
            raise click.UsageError("--all-users writes every user's list to --out FILE.parquet "
                                   "(and takes no --user/--interests)")
        if engine == "local" and out.is_dir():
            raise click.BadParameter(f"{out} is a directory: give a .parquet file", param_hint="--out")
        report = catalog.recommend_all(out, k=_positive_k(k), options=options, user_config=user_config,
                                       engine=engine, address=address, ray_workers=ray_workers)
        for u, why in list(report.skipped.items())[:MAX_REJECTED_SHOWN]:
            err_console.print(f"skipped user {escape(printable(u))}: {escape(printable(why))}")
        console.print(f"{report.rows} recommendations for {report.users} users written to {report.out} "
                      f"in {report.seconds:.1f}s")
        return
    if engine != "local":
        raise click.UsageError("--engine ray serves --all-users (one user is answered locally)")
    if user is None and interests is None:
        raise click.UsageError("give --user ID, --interests TEXT, or --all-users --out FILE")
    result = catalog.recommend(user=user, interests=interests, k=_positive_k(k), explain=explain,
                               options=options, user_config=user_config)
    for note in result.notes:
        err_console.print(f"[yellow]note[/yellow]: {note}")
    if as_json:
        print_json(result.to_json())
        return
    if not result.recommendations:
        console.print("nothing to recommend: every item is already in the history (try --include-seen)")
        return
    console.print(recommendations_table(result, explain))


@click.command("evaluate")
@click.option("--interactions", "file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV/JSONL interactions to split into train and test.")
@db_option
@click.option("--holdout", default="last", show_default=True, metavar="last|FRACTION",
              help="'last': each user's last positive interaction; 0.2: the latest 20% by time.")
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="Cut-off of the metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--sentiment", type=click.Choice(["on", "off", "compare"]), default="on", show_default=True,
              help=SENTIMENT_HELP + " compare: both, as rows mmrec and mmrec-no-sentiment.")
@rerank_options
def evaluate_command(file: Path, db: Path | None, holdout: str, k: int, as_json: bool, sentiment: str,
                     **rerank: Any) -> None:
    """Offline evaluation: mmrec against popularity and random baselines, side by side."""
    options, user_config = build_options(**rerank)
    report, rejected = make_catalog(db).evaluate(file, k=_positive_k(k), holdout=holdout,
                                                 options=options, user_config=user_config,
                                                 sentiment=sentiment)
    if rejected:
        err_console.print(f"{len(rejected)} rows of {file} ignored (first: line {rejected[0].line}: "
                          f"{escape(printable(rejected[0].reason))})")
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title=f"evaluation @{report.k}, holdout {report.holdout}: {report.users} users, "
                        f"{report.train} train / {report.test} test rows, {report.catalog} items")
    cols = ("precision", "recall", "f1", "ndcg", "mrr", "coverage", "novelty")
    table.add_column("method")
    for c in cols:
        table.add_column(f"{c}@{report.k}" if c in ("precision", "recall", "f1", "ndcg") else c,
                         justify="right")
    for row in report.rows:
        table.add_row(row.method, *[f"{getattr(row, c):.3f}" for c in cols])
    console.print(table)

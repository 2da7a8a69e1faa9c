"""The ``deltabench`` command: a thin layer over the library."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark data-poisoning detectors and unlearners (Delta-Influence and competitors).",
)

warnings.filterwarnings("ignore", message=".*torch.cuda.amp.GradScaler.*", category=FutureWarning)


def _fail(lines: list[str], code: int = 2) -> None:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _exit_interrupted() -> NoReturn:
    """Say how to resume and exit 130, past the interpreter's own exit.

    Through the normal exit, 4 of 24 SIGTERMs here ended with status -2 (killed by SIGINT) after
    this message and with no traceback: CPython kills itself with SIGINT at exit when it has flagged
    a KeyboardInterrupt as unhandled, which it does when one escapes code run through
    ``PyRun_String`` (likely inside an extension), even if a caller catches it later. The exit
    handlers (Ray's shutdown, multiprocessing's clean-up) still run; the runner has already saved the
    finished rows, stopped its workers and released the output lock.
    """
    typer.echo("interrupted: finished rows are saved; run the same command again to resume", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(130)


def _registry():
    from .exceptions import RegistryError
    from .registry import default_registry

    try:
        return default_registry()
    except RegistryError as exc:
        _fail([str(exc)])


def _parse(suite: Path):
    from .checks import load_checked_suite
    from .exceptions import SuiteError

    registry = _registry()
    try:
        return registry, load_checked_suite(suite, registry)
    except SuiteError as exc:
        _fail(exc.problems)


def _up_to_date(summary) -> bool:
    """Whether a run that computed nothing left a report written after every results CSV of its
    folder: then rendering it again (pandas, scipy: most of a cached rerun's time) would write the
    same file. `deltabench leaderboard FOLDER --write` re-renders it on demand."""
    from .outputs import report_is_current

    return not summary.computed and report_is_current(summary.output.parent)


def _finished(suite: Path, report: bool) -> bool:
    """Say so and return True when the suite's last complete run is still current (nothing to
    compute or write: :mod:`deltabench.uptodate`), without loading the registry or torch."""
    from time import perf_counter

    from .uptodate import finished_rows

    started = perf_counter()
    found = finished_rows(suite, report=report)
    if found is None:
        return False
    rows, results = found
    line = _summary_line(rows, 0, rows, 0, perf_counter() - started, results)
    typer.echo(f"{line} (unchanged since its last complete run; --fresh recomputes)")
    return True


def _summary_line(rows: int, computed: int, reused: int, failed: int, seconds: float, output: Path) -> str:
    """The closing line of ``deltabench run``, whichever path it took."""
    return (
        f"{rows} rows ({computed} computed, {reused} reused, {failed} failed) in {seconds:.1f} s -> {output}"
    )


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="suite YAML file, e.g. suites/quick.yaml")],
    fresh: Annotated[bool, typer.Option("--fresh", help="ignore cached artifacts and finished rows")] = False,
    report: Annotated[bool, typer.Option(help="also write leaderboard.md next to the CSV")] = True,
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: run only shard I (0-based) of N, e.g. one per machine sharing the cache"),
    ] = None,
    victims: Annotated[
        Path | None,
        typer.Option(help="victim pack (deltabench pack): use its victims instead of training them"),
    ] = None,
) -> None:
    """Run a suite; resumes by default (finished cells and cached stages are reused)."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: workers stopped, finished rows kept
    if not fresh and shard is None and victims is None and _finished(suite, report):
        return
    from .exceptions import PackError
    from .locking import OutputLockError
    from .outputs import REPORT_FILE
    from .runner import run_suite

    registry, parsed = _parse(suite)
    shard_spec = None
    if shard is not None:
        index, _, count = shard.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            _fail([f"--shard: expected I/N with 0 <= I < N, e.g. 0/4, got '{shard}'"])
        shard_spec = (int(index), int(count))
    try:
        summary = run_suite(parsed, fresh=fresh, registry=registry, shard=shard_spec, victims=victims)
    except PackError as exc:
        _fail([str(exc)])
    except KeyboardInterrupt:
        _exit_interrupted()
    except OutputLockError as exc:
        _fail([str(exc)])
    markdown = summary.output.parent / REPORT_FILE
    if report and shard_spec is None and summary.output.is_file() and not _up_to_date(summary):
        from .leaderboard import load_results, render_markdown

        frame = load_results(summary.output.parent)  # with the folder's submissions
        markdown.write_text(
            render_markdown(
                frame, f"Leaderboard: {parsed.suite.name}", cache_dir=parsed.suite.cache, registry=registry
            ),
            encoding="utf-8",
        )
    typer.echo(
        _summary_line(
            summary.rows, summary.computed, summary.reused, summary.failed, summary.seconds, summary.output
        )
    )
    if summary.failed:
        typer.echo("some cells failed; their errors are in the CSV's 'error' column", err=True)
        raise typer.Exit(1)


@app.command()
def validate(suites: Annotated[list[Path], typer.Argument(help="suite YAML file(s)")]) -> None:
    """Check suite files without running them: schema, parameters, datasets, device, folders."""
    from .checks import load_checked_suite
    from .exceptions import SuiteError
    from .runner import plan_jobs

    registry = _registry()
    failed = False
    for suite in suites:
        try:
            parsed = load_checked_suite(suite, registry)
        except SuiteError as exc:
            typer.echo("\n".join(f"error: {line}" for line in exc.problems), err=True)
            failed = True
            continue
        jobs = plan_jobs(parsed)
        cells = sum(len(j.cells()) for j in jobs)
        typer.echo(f"{suite}: ok ({len(jobs)} victims, {cells} cells)")
    if failed:
        raise typer.Exit(2)


@app.command()
def plugins(
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. detector")] = None,
) -> None:
    """List every registered component: kind, name, parameters with defaults, distribution."""
    registry = _registry()
    for info in registry.all():
        if kind and info.kind != kind:
            continue
        typer.echo(f"{info.kind:<9} {info.name:<22} [{info.distribution}]  {info.cls.summary()}")
        for pname, field in info.cls.Params.model_fields.items():
            default = field.get_default(call_default_factory=True)
            typer.echo(f"{'':<10}{pname} = {default!r}  {field.description or ''}".rstrip())


@app.command()
def leaderboard(
    folder: Annotated[Path, typer.Argument(help="folder of leaderboard CSVs, e.g. leaderboards/quick")],
    unlearner: Annotated[str, typer.Option(help="unlearner of the Figure-3 style grid")] = "eu",
    fmt: Annotated[
        str, typer.Option("--format", help="md (the report), csv or json (numbers, intervals), latex")
    ] = "md",
    write: Annotated[
        bool, typer.Option(help="also write leaderboard.md (.json, .tex) in the folder")
    ] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file instead")] = None,
    cache: Annotated[
        Path, typer.Option(help="artifact cache of the run, for the sections plugins add")
    ] = Path(".deltabench/cache"),
) -> None:
    """Render the CSVs of a folder as readable tables, or export them (--format)."""
    from .exports import FORMATS, export
    from .leaderboard import load_results

    if fmt not in FORMATS:
        _fail([f"--format: unknown format '{fmt}'; pick one of {', '.join(FORMATS)}"])
    if write and fmt == "csv":
        _fail(["--write: a CSV in the folder would be read as a results shard; use -o FILE for csv"])
    try:
        frame = load_results(folder)
    except FileNotFoundError as exc:
        _fail([str(exc)])
    text = export(frame, fmt, f"Leaderboard: {folder.name}", unlearner, cache_dir=cache, registry=_registry())
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)
    if write:
        suffix = {"md": "md", "json": "json", "latex": "tex"}[fmt]
        target = (folder if folder.is_dir() else folder.parent) / f"leaderboard.{suffix}"
        target.write_text(text, encoding="utf-8")


@app.command()
def site(
    folders: Annotated[list[Path], typer.Argument(help="results folder(s), e.g. leaderboards/quick")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write index.html into")],
    unlearner: Annotated[str, typer.Option(help="unlearner of the Figure-3 grid and the cost plot")] = "eu",
    title: Annotated[str, typer.Option(help="the page's title")] = "deltabench leaderboard",
    cache: Annotated[
        Path, typer.Option(help="artifact cache of the runs, for the sections plugins add")
    ] = Path(".deltabench/cache"),
) -> None:
    """Write one self-contained index.html (tables, plots, component cards) for the folders."""
    from .site import build_site

    try:
        target = build_site(
            folders, output, cache_dir=cache, figure_unlearner=unlearner, title=title, registry=_registry()
        )
    except (FileNotFoundError, ValueError) as exc:
        _fail([str(exc)])
    typer.echo(f"{target} ({target.stat().st_size / 1024:.0f} KiB)")


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="results folder or CSV (A, the baseline)")],
    b: Annotated[
        Path | None, typer.Argument(help="second results folder or CSV (B); omit to compare within A")
    ] = None,
    detector: Annotated[str | None, typer.Option(help="within A: this detector (B) ...")] = None,
    unlearner: Annotated[str | None, typer.Option(help="within A: this unlearner (B) ...")] = None,
    against: Annotated[str | None, typer.Option(help="... against this one (A)")] = None,
    fail_if_worse: Annotated[
        bool, typer.Option("--fail-if-worse", help="exit 1 when B is significantly worse than A (a CI check)")
    ] = False,
) -> None:
    """Paired comparison with intervals: two runs, or two detectors / unlearners of one run."""
    from .compare import compare_components, compare_runs, render_comparison
    from .leaderboard import load_results

    try:
        frame_a = load_results(a)
        if b is not None:
            if detector or unlearner or against:
                _fail(
                    [
                        "compare: give two result folders, or one folder with --detector/--unlearner and --against"
                    ]
                )
            result = compare_runs(frame_a, load_results(b), str(a), str(b))
        else:
            chosen = [(k, v) for k, v in (("detector", detector), ("unlearner", unlearner)) if v]
            if len(chosen) != 1 or not against:
                _fail(["compare: with one folder, name --detector X (or --unlearner X) and --against Y"])
            kind, name = chosen[0]
            result = compare_components(frame_a, kind, against, name)
    except (FileNotFoundError, ValueError) as exc:
        _fail([str(exc)])
    typer.echo(render_comparison(result))
    if fail_if_worse and result.regressions:
        for group in result.regressions:
            typer.echo(f"worse: {'/'.join(group.key)}: {', '.join(group.worse())}", err=True)
        raise typer.Exit(1)


@app.command()
def stability(
    a: Annotated[Path, typer.Argument(help="results folder or CSV")],
    b: Annotated[
        Path | None, typer.Argument(help="a second run of the same suite; omit to split A's victims by seed")
    ] = None,
    split: Annotated[
        str, typer.Option(help="without B: parity (even vs odd seeds) or halves (lower vs upper seeds)")
    ] = "parity",
    unlearner: Annotated[
        list[str] | None, typer.Option(help="unlearner(s) whose detector ordering is checked (default: eu)")
    ] = None,
    fail_if_changed: Annotated[
        bool, typer.Option("--fail-if-changed", help="exit 1 when any verdict differs significantly")
    ] = False,
) -> None:
    """Count the verdicts (success rates, detector orderings) that differ significantly between two
    disjoint sets of victims: two halves of one run, or two runs (cut to the seeds both ran)."""
    from .leaderboard import load_results
    from .stability import compare_verdicts, render_stability, shared_victims, split_by_seed

    order_unlearners = tuple(unlearner or ["eu"])
    try:
        frame_a = load_results(a)
        if b is None:
            half_a, half_b = split_by_seed(frame_a, split)  # type: ignore[arg-type]
            names = {"parity": ("even seeds", "odd seeds"), "halves": ("lower seeds", "upper seeds")}[split]
            report = compare_verdicts(half_a, half_b, *names, order_unlearners=order_unlearners)
        else:
            run_a, run_b = shared_victims(frame_a, load_results(b))
            report = compare_verdicts(run_a, run_b, str(a), str(b), order_unlearners=order_unlearners)
    except (FileNotFoundError, ValueError) as exc:
        _fail([str(exc)])
    typer.echo(render_stability(report))
    if fail_if_changed and report.changed:
        raise typer.Exit(1)


@app.command()
def pack(
    folder: Annotated[Path, typer.Argument(help="results folder of a run, e.g. leaderboards/quick")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder to write the pack to")],
    suite: Annotated[
        Path | None, typer.Option(help="suite YAML of the run (default: the suite in FOLDER/manifest.json)")
    ] = None,
) -> None:
    """Pack a run's victims (poisoned data, weights, affected points, clean model) from its cache,
    so others score new detectors and unlearners on the same victims (`run --victims`)."""
    from .config import suite_from_dict
    from .exceptions import PackError, SuiteError
    from .file_digest import sha256_file
    from .manifest import MANIFEST_FILE, read_manifest
    from .packs import PACK_FILE, build_pack, pack_size
    from .runner import plan_jobs

    registry = _registry()
    if suite is not None:
        parsed = _parse(suite)[1]
    else:
        manifest = read_manifest(folder / MANIFEST_FILE)
        if manifest is None:
            _fail([f"{folder / MANIFEST_FILE}: no manifest; name the run's suite with --suite"])
        try:
            parsed = suite_from_dict(manifest["suite"], registry, str(folder / MANIFEST_FILE))
        except SuiteError as exc:
            _fail(exc.problems)
    try:
        index = build_pack(parsed, plan_jobs(parsed), registry, output)
    except PackError as exc:
        _fail([str(exc)])
    size = pack_size(output)
    typer.echo(
        f"{len(index['victims'])} victims, {len(index['files'])} files, {size / 2**20:.2f} MiB -> {output}"
    )
    typer.echo(f"publish with it the SHA-256 of {output / PACK_FILE}: {sha256_file(output / PACK_FILE)}")


@app.command()
def verify(
    folder: Annotated[
        Path, typer.Argument(help="results folder with manifest.json, e.g. leaderboards/quick")
    ],
    cells: Annotated[int, typer.Option(help="how many random ok cells to recompute")] = 3,
    seed: Annotated[int, typer.Option(help="seed of the random choice of cells")] = 0,
    atol: Annotated[
        float,
        typer.Option(help="tolerance on rates (accuracy, PSR, precision, recall); counts must be equal"),
    ] = 1e-6,
    victims: Annotated[
        Path | None,
        typer.Option(help="victim pack to take victims from (default: the manifest's, or the cache)"),
    ] = None,
) -> None:
    """Recompute random cells (detection and unlearning) and check they give the CSV's numbers."""
    from .exceptions import PackError
    from .verify import COUNTS, RATES, edited_csvs, verify_cells

    try:
        checks = verify_cells(folder, cells, _registry(), seed=seed, atol=atol, victims=victims)
    except (FileNotFoundError, ValueError, PackError) as exc:
        _fail([str(exc)])
    typer.echo(f"tolerance: {', '.join(COUNTS)} equal; {', '.join(RATES)} within {atol:g} (absolute)")
    for line in edited_csvs(folder):
        typer.echo(f"note: {line}")
    for check in checks:
        verdict = "agrees" if check.agrees else "DISAGREES: " + "; ".join(check.differences)
        typer.echo(f"{check.cell} [{check.source}, victim from {check.victim_from}]: {verdict}")
    bad = sum(not c.agrees for c in checks)
    typer.echo(f"{len(checks) - bad} of {len(checks)} cells agree")
    if bad:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())  # pragma: no cover


if __name__ == "__main__":
    main()

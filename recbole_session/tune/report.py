"""The outputs of a search, read back from Ray Tune's experiment folder:

- ``results.csv``: one row per trial (status, searched values, epochs, seconds, valid score,
  best valid and test metrics, parameter count, error), best first;
- ``best.yaml``: a config file that ``run_recbole_session.py --model=M --dataset=D
  --config_files best.yaml`` accepts to retrain the winner (the search's fixed keys, its
  config files' keys and the winner's values);
- ``summary.md``: the settings, the winner, the best trials, failures and the plots;
- ``plot_<key>.png``: the metric against each searched hyper-parameter.

Every file is written to a temporary name and then renamed (:mod:`recbole_session.files`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from recbole_session.files import atomic_path, write_atomic
from recbole_session.literals import load_yaml
from recbole_session.tune.settings import EXPERIMENT, SearchResult, SearchSettings
from recbole_session.tune.space import SearchSpace
from recbole_session.tune.trainable import FINISHED, SCORE

RESULTS = "results.csv"
BEST = "best.yaml"
SUMMARY = "summary.md"
TOP_ROWS = 10
# plot a grid or choice of positive numbers on a log axis when its largest value is at least
# this many times its smallest (hidden sizes 8..256)
GEOMETRIC_SPREAD = 16
# the statuses of a trial in results.csv
FINISHED_STATUS = "finished"  # trained to the end (or to RecBole's early stop); tested
STOPPED = "stopped early"  # stopped by the scheduler (ASHA) after some evaluations
ERROR = "error"  # raised (bad combination, NaN loss, ...)
INTERRUPTED = "interrupted"  # running when the search was stopped: --resume runs it again
NOT_RUN = "not run"  # never started: --resume runs it


def _plain(value: Any) -> Any:
    """numpy scalars and tuples as plain yaml/csv values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _error_line(trial) -> str:
    """The exception line of a failed trial (Ray writes the traceback to error.txt)."""
    file = getattr(trial, "error_file", None)
    text = ""
    if file and Path(file).is_file():
        text = Path(file).read_text(encoding="utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    exception_lines = [line for line in lines if ("Error" in line or "Exception" in line) and ":" in line and not line.startswith("File ")]
    return (exception_lines or lines or ["(no error message)"])[-1]


@contextlib.contextmanager
def quiet_analysis() -> Iterator[None]:
    """Ray's ExperimentAnalysis warns about every trial without results ("Failed to read the
    results"): failed and never-started trials, which results.csv lists with their status."""
    analysis_logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis_logger.level
    analysis_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        analysis_logger.setLevel(level)


def _status(trial, last: dict[str, Any]) -> str:
    from ray.tune.experiment import Trial

    if trial.status == Trial.ERROR:
        return ERROR
    if last.get(FINISHED):
        return FINISHED_STATUS
    if trial.status == Trial.TERMINATED:
        return STOPPED
    return INTERRUPTED if last.get("epoch") else NOT_RUN


def collect_rows(experiment: Path, space: SearchSpace, mode: str) -> list[dict[str, Any]]:
    """One dict per trial of the Ray Tune experiment, best valid score first."""
    from ray.tune import ExperimentAnalysis

    with quiet_analysis():
        analysis = ExperimentAnalysis(str(experiment), default_metric=SCORE, default_mode=mode)
    rows = []
    for trial in analysis.trials:
        last = dict(trial.last_result or {})
        status = _status(trial, last)
        row: dict[str, Any] = {"trial": trial.trial_id, "status": status}
        row.update({name: _plain(trial.config.get(name)) for name in space.params})
        row["epochs"] = last.get("epoch")
        row["seconds"] = round(last["time_total_s"], 2) if "time_total_s" in last else None
        row[SCORE] = last.get("best_valid_score")
        for part in ("valid", "test"):
            row.update({f"{part}/{key}": value for key, value in (last.get(part) or {}).items()})
        row["n_params"] = last.get("n_params")
        row["threads"] = last.get("threads")
        row["error"] = _error_line(trial) if status == ERROR else ""
        row["trial_dir"] = str(trial.logdir) if trial.logdir else ""
        rows.append(row)
    sign = -1 if mode == "max" else 1

    def order(row: dict[str, Any]):
        score = row[SCORE]
        missing = score is None or (isinstance(score, float) and math.isnan(score))
        return (row["status"] != FINISHED_STATUS, missing, 0 if missing else sign * score, row["trial"])

    return sorted(rows, key=order)


def best_config(settings: SearchSettings, row: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """The keys of the search's config files, its fixed overrides, then the winner's values."""
    merged: dict[str, Any] = {}
    for file in settings.config_files:
        merged.update(load_yaml(Path(file).read_text(encoding="utf-8")) or {})
    merged.update(settings.overrides)
    merged.update({name: row[name] for name in space.params})
    return {key: _plain(value) for key, value in merged.items()}


def write_best_yaml(path: Path, settings: SearchSettings, row: dict[str, Any], space: SearchSpace, metric: str) -> None:
    import yaml

    header = (
        f"# Best trial {row['trial']} of the Ray Tune search of {settings.model} on {settings.dataset}\n"
        f"# valid {metric}: {row[SCORE]}; test {metric}: {row.get('test/' + metric.lower())}\n"
        f"# retrain: python run_recbole_session.py --model={settings.model} --dataset={settings.dataset}"
        f" --config_files {path.name}\n"
    )
    body = yaml.safe_dump(best_config(settings, row, space), sort_keys=False)
    write_atomic(path, header + body)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _geometric(values: tuple | None) -> bool:
    """Values such as 8, 16, ..., 256 read best on a log axis."""
    if not values or not all(_is_number(v) and v > 0 for v in values) or len(values) < 3:
        return False
    ordered = sorted(values)
    return ordered[-1] / ordered[0] >= GEOMETRIC_SPREAD


def plot_param(path: Path, name: str, param, rows: list[dict[str, Any]], metric: str, mode: str) -> None:
    """The metric against one hyper-parameter: every trial as a point (valid and test), and for
    a grid or choice the best valid score per value as a line (as in the paper's Figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r[SCORE] is not None and r[name] is not None]
    values = [r[name] for r in scored]
    numeric = all(_is_number(v) for v in values)
    if param.values is not None and not numeric:
        labels = [str(v) for v in param.values]
        position = {label: i for i, label in enumerate(labels)}

        def x_of(v):
            return position[str(v)]
    else:
        labels = None

        def x_of(v):
            return v

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter([x_of(r[name]) for r in scored], [r[SCORE] for r in scored], label=f"valid {metric}", alpha=0.7)
    tested = [r for r in scored if r.get(f"test/{metric.lower()}") is not None]
    if tested:
        ax.scatter([x_of(r[name]) for r in tested], [r[f"test/{metric.lower()}"] for r in tested],
                   marker="x", label=f"test {metric}", alpha=0.7)
    if param.values is not None and scored:
        pick = max if mode == "max" else min
        best = {}
        for r in scored:
            key = x_of(r[name])
            best[key] = pick(best.get(key, r[SCORE]), r[SCORE])
        xs = sorted(best)
        ax.plot(xs, [best[x] for x in xs], label=f"best valid {metric} per value")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels)
    else:
        if param.log_scale or _geometric(param.values):
            ax.set_xscale("log")
        if param.values is not None:
            ax.set_xticks(list(param.values), [str(v) for v in param.values])
            ax.minorticks_off()
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {name}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def expected_trials(settings: SearchSettings, space: SearchSpace) -> int:
    """How many trials the search makes: every grid combination, ``num_samples`` times."""
    return space.grid_size() * settings.num_samples


def is_interrupted(rows: list[dict[str, Any]], expected: int) -> bool:
    """Trials left to run: some never finished, or Ray had not created them yet."""
    return len(rows) < expected or any(r["status"] in (INTERRUPTED, NOT_RUN) for r in rows)


def write_summary(path: Path, settings: SearchSettings, space: SearchSpace, rows, best, metric: str,
                  plots: list[Path]) -> None:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    test_key = f"test/{metric.lower()}"
    lines = [
        f"# Ray Tune search: {settings.model} on {settings.dataset}",
        "",
        f"- search space: `{settings.space_file}` ({', '.join(f'{p.name} {p.kind}' for p in space.params.values())})",
        f"- fixed keys: `{settings.overrides}`" + (f"; config files: {settings.config_files}" if settings.config_files else ""),
        f"- scheduler: {settings.scheduler}; samples: {settings.num_samples}; "
        f"resources per trial: {settings.cpus_per_trial} CPU, {settings.gpus_per_trial} GPU",
        f"- trials: {len(rows)} of {expected_trials(settings, space)} ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")",
        f"- selection: valid {metric}; every finished trial is tested with its best valid epoch",
        "",
    ]
    if best is not None:
        lines += [
            "## Best trial",
            "",
            f"Trial `{best['trial']}`: valid {metric} {best[SCORE]:.4f}, test {metric} {best.get(test_key, float('nan')):.4f}, "
            f"{best['epochs']} epoch(s), {best['seconds']} s, {best['n_params']} parameters.",
            "",
            _markdown_table([best], list(space.params)),
            "",
            f"Retrain it: `python run_recbole_session.py --model={settings.model} --dataset={settings.dataset} "
            f"--config_files {path.parent / BEST}`",
            "",
        ]
    else:
        lines += ["No trial finished: there is no best trial yet.", ""]
    if is_interrupted(rows, expected_trials(settings, space)):
        lines += ["The search was interrupted: continue it with `--resume` (finished trials are kept).", ""]
    scored = [r for r in rows if r[SCORE] is not None]
    if scored:
        columns = ["trial", "status", *space.params, "epochs", "seconds", SCORE]
        columns += [c for c in (test_key,) if any(c in r for r in scored)]
        lines += [f"## Best {min(TOP_ROWS, len(scored))} trials", "", _markdown_table(scored[:TOP_ROWS], columns), ""]
    failed = [r for r in rows if r["status"] == ERROR]
    if failed:
        lines += ["## Failed trials", "", _markdown_table(failed, ["trial", *space.params, "error"]), ""]
    if plots:
        lines += ["## Metric against each hyper-parameter", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    write_atomic(path, "\n".join(lines))


def write_outputs(output: Path, settings: SearchSettings, space: SearchSpace, config) -> SearchResult:
    """Read the experiment in ``output`` and write every output file."""
    mode = "max" if config["valid_metric_bigger"] else "min"
    metric = str(config["valid_metric"])
    rows = collect_rows(output / "ray" / EXPERIMENT, space, mode)
    files = []
    frame = pd.DataFrame(rows)
    for column in ("epochs", "n_params", "threads"):  # whole numbers, blank where a trial has none
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    with atomic_path(output / RESULTS) as tmp:
        frame.to_csv(tmp, index=False)
    files.append(output / RESULTS)

    best = rows[0] if rows and rows[0]["status"] == FINISHED_STATUS and rows[0][SCORE] is not None else None
    if best is not None:
        write_best_yaml(output / BEST, settings, best, space, metric)
        files.append(output / BEST)
    plots = []
    for name, param in space.params.items():
        plot = output / f"plot_{name}.png"
        plot_param(plot, name, param, rows, metric, mode)
        plots.append(plot)
    write_summary(output / SUMMARY, settings, space, rows, best, metric, plots)
    files += [output / SUMMARY, *plots]
    interrupted = is_interrupted(rows, expected_trials(settings, space))
    return SearchResult(output, rows, best_config(settings, best, space) if best else None, interrupted, files)


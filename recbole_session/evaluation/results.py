"""Run results as files: JSON (everything, with per-user values for paired tests) and
Markdown (the tables), written next to the run's RecBole log; seeds aggregated as mean ± std."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recbole_session.files import write_atomic

SPLITS = ("valid", "test")


def _plain(value: Any) -> Any:
    """JSON-able copy (numpy scalars, OrderedDicts, tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """``valid/<metric>``, ``test/<metric>`` (RecBole's own evaluation),
    ``valid/<protocol>/<metric>``, ``test/<protocol>/<metric>``, ``n_params``."""
    flat: dict[str, float] = {}
    for split, key in (("valid", "best_valid_result"), ("test", "test_result")):
        for metric, value in (result.get(key) or {}).items():
            flat[f"{split}/{metric}"] = float(value)
    for split in SPLITS:
        for metric, value in (result.get(f"{split}_protocols") or {}).items():
            flat[f"{split}/{metric}"] = float(value)
        # the slice of targets that open a session: keys "<split>/open/<protocol>/<metric>"
        for metric, value in (result.get(f"{split}_open_protocols") or {}).items():
            flat[f"{split}/{metric}"] = float(value)
    if result.get("n_params") is not None:
        flat["n_params"] = float(result["n_params"])
    return flat


def split_counts(details: dict[str, Any]) -> dict[str, Any]:
    """``targets`` and ``open_targets`` per split (eval rows, and those whose target opens a new
    session), and ``<split>_open_protocols``, the means over the latter, from the splits'
    :class:`~recbole_session.evaluation.protocols.ProtocolResult`."""
    counts: dict[str, Any] = {"targets": {split: detail.n_targets for split, detail in details.items()},
                              "open_targets": {split: detail.n_open for split, detail in details.items()}}
    for split, detail in details.items():
        if detail.open_metrics:
            counts[f"{split}_open_protocols"] = detail.open_metrics
    return counts


def results_markdown(title: str, rows: dict[str, str], extra: dict[str, Any]) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {key}: {value}" for key, value in extra.items()]
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {metric} | {value} |" for metric, value in rows.items()]
    return "\n".join(lines) + "\n"


def save_run_results(result: dict[str, Any], config: Any, details: dict[str, Any], stem: Path) -> Path:
    """``<stem>.results.json`` and ``<stem>.results.md`` for one run. ``details`` maps a split
    to its :class:`~recbole_session.evaluation.protocols.ProtocolResult`."""
    payload = {
        "kind": "run",
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "eval_negatives_seed": config["eval_negatives_seed"],
        "eval_split": config["eval_split"],
        **split_counts(details),
        **{k: _plain(v) for k, v in result.items()},
        "per_user": {split: detail.to_json() for split, detail in details.items()},
    }
    json_path = Path(f"{stem}.results.json")
    write_atomic(json_path, json.dumps(payload, indent=1))
    rows = {key: f"{value:.4f}" if key != "n_params" else str(int(value)) for key, value in flat_metrics(payload).items()}
    extra = {"model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
             "eval split": config["eval_split"],
             **{f"{split} targets": f"{payload['targets'][split]} ({payload['open_targets'][split]} open a session)"
                for split in details},
             "trainable parameters": result.get("n_params"), "model file": result.get("model_file")}
    write_atomic(Path(f"{stem}.results.md"), results_markdown(f"{config['model']} on {config['dataset']}", rows, extra))
    return json_path


def aggregate_runs(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of every flat metric."""
    flats = [flat_metrics(r) for r in results]
    keys = [k for k in flats[0] if all(k in f for f in flats)]
    mean, std = {}, {}
    for key in keys:
        values = np.array([f[key] for f in flats], dtype=np.float64)
        mean[key] = float(values.mean())
        std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std}


def _per_user_mean(run_files: list[Path], split: str) -> dict[str, Any] | None:
    """Per-user values averaged over seeds (the candidates must be the same in every run)."""
    loaded = [json.loads(Path(p).read_text())["per_user"].get(split) for p in run_files]
    if any(entry is None for entry in loaded):
        return None
    first = loaded[0]
    for path, entry in zip(run_files[1:], loaded[1:]):
        if entry["users"] != first["users"] or entry["fingerprints"] != first["fingerprints"]:
            raise ValueError(f"{path}: other users or candidates than {run_files[0]}; cannot average per user")
    keys = [k for k in first["per_user"] if all(k in e["per_user"] for e in loaded)]
    per_user = {k: np.round(np.mean([e["per_user"][k] for e in loaded], axis=0), 6).tolist() for k in keys}
    return {"users": first["users"], "fingerprints": first["fingerprints"], "per_user": per_user,
            "opens": first.get("opens", []),
            "metrics": {k: float(np.mean(v)) for k, v in per_user.items()}}


def save_seed_results(results: list[dict[str, Any]], seeds: list[int], model: str, dataset: str,
                      stem: Path) -> Path:
    """``<stem>.results.json`` / ``.results.md``: mean ± std over the seeds' runs, each run's
    metrics, and per-user values averaged over seeds (for paired tests between models)."""
    summary = aggregate_runs(results)
    run_files = [Path(r["results_file"]) for r in results if r.get("results_file")]
    per_user = {}
    if len(run_files) == len(results):
        for split in SPLITS:
            entry = _per_user_mean(run_files, split)
            if entry is not None:
                per_user[split] = entry
    payload = {
        "kind": "seeds",
        "model": model,
        "dataset": dataset,
        "seeds": list(seeds),
        "n_params": results[0].get("n_params"),
        **summary,
        "runs": [{"seed": s, "results_file": r.get("results_file"), "model_file": r.get("model_file"),
                  "metrics": flat_metrics(r)} for s, r in zip(seeds, results)],
        "per_user": per_user,
    }
    json_path = Path(f"{stem}.results.json")
    write_atomic(json_path, json.dumps(_plain(payload), indent=1))
    rows = {}
    for key, mean in summary["mean"].items():
        std = summary["std"][key]
        rows[key] = f"{int(mean)} ± {std:.0f}" if key == "n_params" else f"{mean:.4f} ± {std:.4f}"
    extra = {"model": model, "dataset": dataset, "seeds": ", ".join(map(str, seeds)),
             "trainable parameters": results[0].get("n_params"),
             "spread": "mean ± sample standard deviation over seeds"}
    write_atomic(Path(f"{stem}.results.md"),
                 results_markdown(f"{model} on {dataset}, {len(seeds)} seeds", rows, extra))
    return json_path


def format_mean_std(summary: dict[str, dict[str, float]]) -> str:
    """Console table of :func:`aggregate_runs`."""
    width = max((len(k) for k in summary["mean"]), default=10)
    lines = []
    for key, mean in summary["mean"].items():
        std = summary["std"][key]
        value = f"{int(mean)} ± {std:.0f}" if key == "n_params" else f"{mean:.4f} ± {std:.4f}"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)


def load_results(path: str | Path) -> dict[str, Any]:
    """A ``.results.json`` file, or the run's ``.log`` (its results file is found next to it)."""
    path = Path(path)
    if path.suffix == ".log":
        path = path.with_name(path.stem + ".results.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results file (expected a .results.json or a run's .log)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    if "per_user" not in data:
        raise ValueError(f"{path}: field 'per_user' missing: not a recbole-session results file")
    return data

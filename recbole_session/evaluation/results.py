"""Run results as files: JSON (everything, with per-user values for paired tests) and
Markdown (the tables), written next to the run's RecBole log; seeds aggregated as mean ± std."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recbole_session.cli import UsageError
from recbole_session.files import os_reason, write_atomic
from recbole_session.literals import short

SPLITS = ("valid", "test")
_MISSING = object()  # a field the file does not have (None is a value JSON can hold)


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
    if result.get("n_params") is not None:
        flat["n_params"] = float(result["n_params"])
    return flat


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
        **{k: _plain(v) for k, v in result.items()},
        "per_user": {split: detail.to_json() for split, detail in details.items()},
    }
    json_path = Path(f"{stem}.results.json")
    write_atomic(json_path, json.dumps(payload, indent=1))
    rows = {key: f"{value:.4f}" if key != "n_params" else str(int(value)) for key, value in flat_metrics(result).items()}
    extra = {"model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
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
    """Per-user values averaged over seeds (the candidates must be the same in every run), and
    each seed's own under ``per_seed`` (``{key: [values of seed 1, ...]}``, the seeds' order):
    the bootstrap of :mod:`recbole_session.evaluation.stats` draws seeds, which a mean hides."""
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
            "metrics": {k: float(np.mean(v)) for k, v in per_user.items()},
            "per_seed": {k: [e["per_user"][k] for e in loaded] for k in keys}}


def save_seed_results(results: list[dict[str, Any]], seeds: list[int], model: str, dataset: str,
                      stem: Path) -> Path:
    """``<stem>.results.json`` / ``.results.md``: mean ± std over the seeds' runs, each run's
    metrics, per-user values averaged over seeds, and each seed's per-user values (for the
    paired comparisons between models, which resample seeds)."""
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
    """A ``.results.json`` file, or the run's ``.log`` (its results file is found next to it),
    checked field by field: anything else is a ``UsageError`` naming the file and the field."""
    path = Path(path)
    if path.suffix == ".log":
        path = path.with_name(path.stem + ".results.json")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a results file")
    if not path.is_file():
        raise UsageError(f"{path}: no results file (expected a .results.json or a run's .log)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise UsageError(f"{path}: cannot read: {os_reason(err)}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text (byte {err.start + 1}): not a results file") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:  # nesting deeper than the parser's stack
        raise UsageError(f"{path}: JSON nested too deep: not a results file") from None
    _check_results(data, path)
    return data


def _check_results(data: Any, path: Path) -> None:
    """The fields :mod:`recbole_session.compare` reads, with their types: ``per_user`` maps a split
    to ``users`` (a list of ids), ``fingerprints`` (protocol -> text) and ``per_user`` (metric ->
    one number per user)."""
    def bad(field: str, expected: str, value: Any = None) -> UsageError:
        got = "missing" if value is _MISSING else f"got {type(value).__name__} {short(value)}"
        return UsageError(f"{path}: field '{field}' expects {expected}, {got}: not a recbole-session results file")

    if not isinstance(data, dict):
        raise bad("(top level)", "an object", data)
    if "per_user" not in data:
        raise UsageError(f"{path}: field 'per_user' missing: not a recbole-session results file")
    if not isinstance(data["per_user"], dict):
        raise bad("per_user", "an object (split -> per-user values)", data["per_user"])
    for split, entry in data["per_user"].items():
        where = f"per_user.{split}"
        if not isinstance(entry, dict):
            raise bad(where, "an object with users, fingerprints and per_user", entry)
        users = entry.get("users", _MISSING)
        if not isinstance(users, list) or not all(isinstance(u, (str, int)) for u in users):
            raise bad(f"{where}.users", "a list of user ids", users)
        fingerprints = entry.get("fingerprints", _MISSING)
        if not isinstance(fingerprints, dict) or not all(isinstance(v, (str, type(None))) for v in fingerprints.values()):
            raise bad(f"{where}.fingerprints", "an object (protocol -> fingerprint text)", fingerprints)
        values = entry.get("per_user", _MISSING)
        if not isinstance(values, dict):
            raise bad(f"{where}.per_user", "an object (protocol/metric -> one value per user)", values)
        for key, column in values.items():
            if not isinstance(column, list) or len(column) != len(users) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
                raise bad(f"{where}.per_user.{key}", f"a list of {len(users)} numbers (one per user)", column)
        # a seeds summary's own per-seed values (older summaries have none): one list per seed
        per_seed = entry.get("per_seed", {})
        if not isinstance(per_seed, dict):
            raise bad(f"{where}.per_seed", "an object (protocol/metric -> one list per seed)", per_seed)
        seeds = data.get("seeds") if isinstance(data.get("seeds"), list) else []
        for key, columns in per_seed.items():
            if not isinstance(columns, list) or len(columns) != len(seeds) or not all(
                    isinstance(c, list) and len(c) == len(users) and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in c) for c in columns):
                raise bad(f"{where}.per_seed.{key}", f"{len(seeds)} lists (one per seed) of {len(users)} numbers",
                          columns)
    for field, types, expected in (("model", str, "a name"), ("dataset", str, "a name"),
                                   ("kind", str, "'run' or 'seeds'"), ("seeds", list, "a list of seeds")):
        if field in data and not isinstance(data[field], types):
            raise bad(field, expected, data[field])

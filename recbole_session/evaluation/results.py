"""Run results as files: JSON (everything, with per-user values for paired tests) and
Markdown (the tables), written next to the run's RecBole log; seeds aggregated as mean ± std.
Every file records the :func:`environment` its runs trained in (files written before it existed
have none; every reader takes that as "not recorded")."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from recbole_session.cli import UsageError
from recbole_session.files import os_reason, write_atomic
from recbole_session.literals import short

SPLITS = ("valid", "test")
_MISSING = object()  # a field the file does not have (None is a value JSON can hold)
# variables that choose torch's or OpenBLAS's CPU kernels: recorded when set
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")
CPUINFO = Path("/proc/cpuinfo")


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what Python's platform knows)."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version() -> str:
    """This package's ``__version__``, from its root module, which Python always loads before any
    of its submodules (importing the root here would close an import cycle)."""
    return sys.modules[__name__.split(".")[0]].__version__


def environment(device: Any = "cpu") -> dict[str, Any]:
    """What a seed's numbers depend on besides the code and the data (docs/evaluation.md, "What
    a seed reproduces"): library versions, the CPU and the instruction set of the kernels torch
    actually runs (``AVX512`` and ``AVX2`` kernels round differently), the thread count, and the
    GPU when ``device`` is a CUDA device. One schema for the run, seeds and reproduce files."""
    import recbole
    import torch

    device = torch.device(device)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recbole": recbole.__version__,
        "recbole_session": package_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernel_variables": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
        "threads": torch.get_num_threads(),
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def environment_line(env: dict[str, Any] | None) -> str:
    """One line of :func:`environment` for a Markdown file."""
    if not env:
        return "not recorded"
    kernels = env["cpu_capability"] + "".join(f", {k}={v}" for k, v in env.get("kernel_variables", {}).items())
    where = f"GPU {env['gpu']}" if env.get("gpu") else "CPU"
    return (f"{where}; CPU {env['cpu']} ({kernels} kernels), {env['threads']} thread(s); torch {env['torch']}, "
            f"RecBole {env['recbole']}, recbole-session {env['recbole_session']}, Python {env['python']}")


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
    to its :class:`~recbole_session.evaluation.protocols.ProtocolResult`. The run's
    ``environment`` is ``result["environment"]`` when the caller recorded it where it trained,
    else this process's."""
    env = result.get("environment") or environment(config["device"])
    payload = {
        "kind": "run",
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "eval_negatives_seed": config["eval_negatives_seed"],
        "eval_split": config["eval_split"],
        **split_counts(details),
        **{k: _plain(v) for k, v in result.items()},
        "environment": env,
        "per_user": {split: detail.to_json() for split, detail in details.items()},
    }
    json_path = Path(f"{stem}.results.json")
    write_atomic(json_path, json.dumps(payload, indent=1))
    rows = {key: f"{value:.4f}" if key != "n_params" else str(int(value)) for key, value in flat_metrics(payload).items()}
    extra = {"model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
             "eval split": config["eval_split"],
             **{f"{split} targets": f"{payload['targets'][split]} ({payload['open_targets'][split]} open a session)"
                for split in details},
             "trainable parameters": result.get("n_params"), "model file": result.get("model_file"),
             "environment": environment_line(env)}
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
            "opens": first.get("opens", []),
            "metrics": {k: float(np.mean(v)) for k, v in per_user.items()},
            "per_seed": {k: [e["per_user"][k] for e in loaded] for k in keys}}


def save_seed_results(results: list[dict[str, Any]], seeds: list[int], model: str, dataset: str,
                      stem: Path) -> Path:
    """``<stem>.results.json`` / ``.results.md``: mean ± std over the seeds' runs, each run's
    metrics and :func:`environment` (None: not recorded), per-user values averaged over seeds and
    each seed's per-user values (for the paired comparisons between models, which resample
    seeds). The top-level ``environment`` is the runs' one environment, or None when they differ
    or one is not recorded (a table resumed on another machine): then only each run's tells."""
    summary = aggregate_runs(results)
    envs = [r.get("environment") for r in results]
    shared_env = envs[0] if envs[0] and all(env == envs[0] for env in envs) else None
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
        "environment": shared_env,
        **summary,
        "runs": [{"seed": s, "results_file": r.get("results_file"), "model_file": r.get("model_file"),
                  "environment": r.get("environment"), "metrics": flat_metrics(r)}
                 for s, r in zip(seeds, results)],
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
             "spread": "mean ± sample standard deviation over seeds",
             "environment": environment_line(shared_env) if shared_env else
             "differs between the runs or not recorded: see each run's in the JSON file"}
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

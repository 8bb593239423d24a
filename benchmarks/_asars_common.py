"""Shared set-up of the ASARS benchmarks: the data (the converter's ``asars-small`` preset of
ml-100k), and one place that builds, trains and evaluates a model through RecBole."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

import recbole_session  # noqa: E402,F401
from recbole_session.build import build, make_config  # noqa: E402
from recbole_session.convert import convert  # noqa: E402
from recbole_session.evaluation import evaluate_protocols_detailed  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402

# The ASARS filters (1-hour sessions cut first, items >= 10 events, sessions >= 2 items) with
# users of >= 2 sessions: the paper's >= 10 sessions leaves 35 users on ml-100k.
PRESET = "asars-small"
RECIPE = "ml-100k"
DATASET = f"{RECIPE}-{PRESET}"
# "the maximum session sequence length is 200" (section 3.3), for every model of a comparison
MAX_LENGTH = 200
QUICK_ROWS = 50  # --quick: each user's newest rows
PROTOCOLS = ("full", "full_unseen")


def asars_data(root: Path, quick: bool = False, rows_per_user: int | None = None) -> tuple[Path, list[str]]:
    """Convert ml-100k with the ``asars-small`` preset under ``root``, keeping each user's newest
    ``rows_per_user`` rows (``quick``: :data:`QUICK_ROWS`; None: all); returns (data_path, config
    files) for ``make_config``."""
    rows = QUICK_ROWS if quick else rows_per_user
    overrides = {"max_user_inter": rows} if rows else {}
    folder = convert(RECIPE, out=root, preset=PRESET, verbose=False, **overrides)
    return root, [str(folder / f"{DATASET}.yaml")]


def prepare(model: str, data: tuple[Path, list[str]], work: Path, overrides: dict[str, Any]):
    """(config, dataset, train, valid, test, model, trainer) for ``model`` on the data of
    :func:`asars_data`, with RecBole's own dataset, dataloaders and trainer."""
    data_path, config_files = data
    config = make_config(
        model, DATASET, config_file_list=config_files,
        config_dict={
            "data_path": str(data_path), "checkpoint_dir": str(work / "saved"), "MAX_ITEM_LIST_LENGTH": MAX_LENGTH,
            "show_progress": False, "state": "WARNING", "use_gpu": False, **overrides,
        },
    )
    built = build(config)
    return config, built.dataset, built.train_data, built.valid_data, built.test_data, built.model, built.trainer


def mean_user(model: torch.nn.Module) -> None:
    """Replace every user's embedding by the mean over the users (row 0 is padding)."""
    with torch.no_grad():
        weight = model.user_embedding.weight
        weight[1:] = weight[1:].mean(dim=0)


def train_and_test(model: str, data, work: Path, overrides: dict[str, Any], ablations: dict | None = None) -> dict:
    """Train with RecBole's early stopping on the valid metric and test the best epoch.

    Returns the test metrics (``metrics``) and per-user values (``per_user``) under
    :data:`PROTOCOLS`, the same for each ``ablations`` entry (a function applied to a copy of
    the trained model; keys ``<name>:metrics`` / ``<name>:per_user``), the eval ``users``,
    the epochs run, the best epoch, the seconds of training and validation and the
    trainable parameters."""
    config, dataset, train, valid, test, net, trainer = prepare(model, data, work, overrides)
    scores: list[float] = []
    start = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=lambda epoch, score: scores.append(score))
    seconds = time.perf_counter() - start
    trainer.evaluate(test, load_best_model=True, show_progress=False)  # loads the best epoch's weights
    out: dict[str, Any] = {
        "n_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "epochs": len(scores), "best_epoch": int(np.argmax(scores)) if scores else -1, "seconds": seconds,
    }
    models = {"": trainer.model}
    for name, ablate in (ablations or {}).items():
        models[name] = copy.deepcopy(trainer.model)
        ablate(models[name])
    for name, trained in models.items():
        detail = evaluate_protocols_detailed(trained, test, config, list(PROTOCOLS), dataset=dataset)
        prefix = f"{name}:" if name else ""
        out[f"{prefix}metrics"] = detail.metrics
        out[f"{prefix}per_user"] = {k: np.asarray(v) for k, v in detail.per_user.items()}
        out["users"] = detail.users
    return out


# ---------------------------------------------------------------- several rows, several seeds
RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
COLUMNS = ("mrr@10", "mrr@20", "mrr@30", "mrr@40", "recall@20", "ndcg@20")


def seed_list(count: int) -> list[int]:
    return list(range(1, count + 1))


def run_grid(rows: dict[str, tuple[str, dict, dict]], seeds: list[int], data, work: Path,
             cache: Path | None = None, log=print) -> dict[str, dict[int, dict]]:
    """``rows``: label -> (model, overrides, ablations). Every row is trained once per seed
    with :func:`train_and_test`; an ablation adds a row ``<ablation name>`` evaluated on the
    trained model of its row. With ``cache`` each (row, seed) result is stored as JSON there and
    reused by a later call with the same row settings (to resume or to split a long run)."""
    results: dict[str, dict[int, dict]] = {}
    for label, (model, overrides, ablations) in rows.items():
        for seed in seeds:
            key = _cache_key(label, model, overrides, seed, data)
            file = cache / f"{key}.json" if cache else None
            if file is not None and file.is_file():
                out = _load(file)
            else:
                out = train_and_test(model, data, work / f"{label}-{seed}", {**overrides, "seed": seed}, ablations)
                if file is not None:
                    write_atomic(file, json.dumps(_jsonable(out)))
            results.setdefault(label, {})[seed] = _strip(out, "")
            for name in ablations:
                results.setdefault(name, {})[seed] = _strip(out, f"{name}:")
            log(f"{label:16s} seed {seed}: " + "  ".join(
                f"{c} {out['metrics'][f'full/{c}']:.4f}" for c in ("mrr@20", "recall@20"))
                + f"  unseen mrr@20 {out['metrics']['full_unseen/mrr@20']:.4f}  "
                f"({out['epochs']} epochs, best {out['best_epoch']}, {out['seconds']:.0f} s)")
    return results


def _strip(out: dict, prefix: str) -> dict:
    return {"metrics": out[f"{prefix}metrics"], "per_user": out[f"{prefix}per_user"], "users": out["users"],
            **{k: out[k] for k in ("n_params", "epochs", "best_epoch", "seconds")}}


def _cache_key(label: str, model: str, overrides: dict, seed: int, data) -> str:
    # the data folder is temporary: the converted dataset is named by its settings file's content
    settings = Path(data[1][0]).read_text() if data[1] else ""
    text = json.dumps([label, model, overrides, seed, settings], sort_keys=True, default=str)
    return f"{label}-{seed}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _jsonable(out: dict) -> dict:
    return {k: ({m: v.tolist() for m, v in val.items()} if k.endswith("per_user") else val) for k, val in out.items()}


def _load(file: Path) -> dict:
    out = json.loads(file.read_text())
    return {k: ({m: np.asarray(v) for m, v in val.items()} if k.endswith("per_user") else val) for k, val in out.items()}


def summarize(results: dict[str, dict[int, dict]], reference: str, metric: str = "mrr@20") -> dict[str, dict]:
    """Per row: mean and sample std over seeds of every test metric, seconds per epoch, and a
    paired t-test against ``reference`` on per-user values (each user's value averaged over
    seeds) for ``full/<metric>`` and ``full_unseen/<metric>``."""
    summary = {}
    ref = results[reference]
    for label, by_seed in results.items():
        runs = list(by_seed.values())
        keys = runs[0]["metrics"].keys()
        row = {"mean": {k: float(np.mean([r["metrics"][k] for r in runs])) for k in keys},
               "std": {k: float(np.std([r["metrics"][k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
                       for k in keys},
               "epoch_s": float(np.median([r["seconds"] / max(r["epochs"], 1) for r in runs])),
               "epochs": [r["epochs"] for r in runs], "n_params": runs[0]["n_params"], "p": {}}
        for protocol in PROTOCOLS:
            key = f"{protocol}/{metric}"
            mine = _per_user_mean(by_seed, key)
            theirs = _per_user_mean(ref, key, order=runs[0]["users"])
            row["p"][key] = float(stats.ttest_rel(mine, theirs).pvalue) if label != reference else None
        summary[label] = row
    return summary


def _per_user_mean(by_seed: dict[int, dict], key: str, order: list[str] | None = None) -> np.ndarray:
    """Each user's value averaged over seeds, in the user order of ``order`` (default: the
    first run's)."""
    runs = list(by_seed.values())
    order = order or runs[0]["users"]
    values = []
    for run in runs:
        index = {u: i for i, u in enumerate(run["users"])}
        values.append(np.asarray(run["per_user"][key])[[index[u] for u in order]])
    return np.mean(values, axis=0)


def markdown_table(summary: dict[str, dict], reference: str) -> str:
    """One row per model: mean ± std of :data:`COLUMNS` (full ranking), MRR@20 / Recall@20 with
    the history excluded, the paired p-values against ``reference``, epochs, s/epoch, params."""
    head = ["model", *[c.upper().replace("RECALL", "Recall") for c in COLUMNS], "unseen MRR@20",
            "unseen Recall@20", f"p vs {reference} (full / unseen MRR@20)", "epochs", "s/epoch", "params"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, row in summary.items():
        cells = [f"{row['mean'][f'full/{c}']:.4f} ± {row['std'][f'full/{c}']:.4f}" for c in COLUMNS]
        cells += [f"{row['mean'][f'full_unseen/{c}']:.4f} ± {row['std'][f'full_unseen/{c}']:.4f}"
                  for c in ("mrr@20", "recall@20")]
        p = row["p"]
        cells.append("-" if p["full/mrr@20"] is None else f"{p['full/mrr@20']:.3g} / {p['full_unseen/mrr@20']:.3g}")
        cells += ["/".join(map(str, row["epochs"])), f"{row['epoch_s']:.1f}", str(row["n_params"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(table_file: Path, section: str, title: str, body: str) -> None:
    """The table file under benchmarks/results/ and this script's section of docs/benchmarks.md."""
    write_atomic(table_file, f"# {title}\n\n{body.strip()}\n")
    update_section(DOCS, section, f"### {title}\n\n{body.strip()}", title="# Benchmarks")

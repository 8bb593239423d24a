"""Paper Table 2: SASRec, BERT4Rec and the eight switch combinations of SessionBERT4Rec.

Every row is trained with the same recipe, data and seeds (see :func:`runner.shared_recipe`),
selected on valid NDCG@10 under random-100, and evaluated under random-100, popular-100 and all
items. Cells are mean ± sample standard deviation over seeds; ``p`` is a paired t-test of the
row against "switches off" on per-user values averaged over seeds
(:func:`recbole_session.compare.paired_tests`). Test targets that open a new session (a
dataset variant that keeps single-item sessions has them) are reported as a separate slice.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_session.compare import paired_tests
from recbole_session.evaluation.results import aggregate_runs, load_results, save_seed_results
from recbole_session.files import write_atomic
from recbole_session.reproduce.runner import PROTOCOLS, RunSpec, load_run

OFF = "BERT4Rec (switches off)"
FULL = "+ ST + SSE + TAS"
SASREC = "SASRec (RecBole)"
BERT4REC = "BERT4Rec (RecBole)"
# paper order: BERT4Rec, + ST, + SSE, + TAS, + ST + SSE, + ST + TAS, + SSE + TAS, all three
COMBOS = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
COLUMNS = [(p, m) for p in PROTOCOLS for m in ("recall@10", "ndcg@10")]
HEADERS = {"random100": "Ran.", "popular100": "Pop.", "full": "All"}
N_ALL = "test/full/ndcg@10"
# the device of a run finished before runs recorded it
UNRECORDED = "not recorded"


def combo_label(st: int, se: int, te: int) -> str:
    parts = [name for name, on in (("+ ST", st), ("+ SSE", se), ("+ TAS", te)) if on]
    return " ".join(parts) or OFF


def switches(st: int, se: int, te: int, m: int, dt: int) -> dict[str, Any]:
    return {"session_token": bool(st), "max_session_segments": m if se else 0, "temporal_dim": dt if te else 0}


def table_rows(m: int, dt: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, overrides): RecBole's SASRec and BERT4Rec, then the 8 combinations."""
    rows = [(SASREC, "SASRec", {}), (BERT4REC, "BERT4Rec", {})]
    rows += [(combo_label(*c), "SessionBERT4Rec", switches(*c, m, dt)) for c in COMBOS]
    return rows


def specs_for(rows: list[tuple[str, str, dict]], dataset: str, seeds: list[int], shared: dict,
              config_files: list[str]) -> dict[str, list[RunSpec]]:
    return {label: [RunSpec(label, model, dataset, seed, overrides, shared, tuple(config_files))
                    for seed in seeds] for label, model, overrides in rows}


def _subset(results: dict[str, Any], users: list[str], split: str = "test") -> dict[str, Any]:
    """A copy of a loaded results file whose per-user ``split`` values keep only ``users``."""
    out = copy.deepcopy(results)
    entry = out["per_user"][split]
    index = [i for i, user in enumerate(entry["users"]) if user in set(users)]
    entry["users"] = [entry["users"][i] for i in index]
    entry["per_user"] = {k: [v[i] for i in index] for k, v in entry["per_user"].items()}
    return out


def summarize(specs: dict[str, list[RunSpec]], paths: dict[str, list[Path]], work: Path,
              reference: str = OFF) -> dict[str, Any]:
    """Per row: mean/std over seeds, the seeds file (per-user means), paired tests against the
    ``reference`` row (all users, and the new-session slice when there is one)."""
    rows: dict[str, Any] = {}
    for label, row_specs in specs.items():
        results = [{**load_run(p), "results_file": str(p)} for p in paths[label]]
        first = row_specs[0]
        stem = first.stem(work).with_name(first.stem(work).name.rsplit("-seed", 1)[0] + "-seeds")
        seeds_file = save_seed_results(results, [s.seed for s in row_specs], first.model, first.dataset, stem)
        summary = aggregate_runs(results)
        rows[label] = {
            "model": first.model, "overrides": first.overrides, "n_params": results[0]["n_params"],
            "seeds": [spec.seed for spec in row_specs],
            "mean": summary["mean"], "std": summary["std"], "seeds_file": str(seeds_file),
            "train_seconds": float(np.mean([r["train_seconds"] for r in results])),
            # summed over seeds (runs finished before this field existed count 0)
            "run_cpu_seconds": float(sum(r.get("run_cpu_seconds", 0.0) for r in results)),
            "best_epoch": float(np.mean([r["best_epoch"] for r in results])),
            "epochs_run": float(np.mean([r["epochs_run"] for r in results])),
            "new_session_users": results[0].get("new_session_users", []),
            "devices": [r.get("device", UNRECORDED) for r in results],
        }
    cpu_minutes = sum(row["run_cpu_seconds"] for row in rows.values()) / 60
    if reference not in rows:
        return {"rows": rows, "cpu_minutes": cpu_minutes}
    off = load_results(rows[reference]["seeds_file"])
    opening = rows[reference]["new_session_users"]
    all_users = off["per_user"]["test"]["users"]
    continuing = [u for u in all_users if u not in set(opening)]
    for row in rows.values():
        data = load_results(row["seeds_file"])
        row["vs_off"] = {r["key"]: {"diff": r["diff"], "p": r["p"]}
                         for r in paired_tests(off, data, "test", ["recall@10", "ndcg@10"])}
        if opening:
            row["slices"] = {}
            for name, users in (("opens_session", opening), ("continues_session", continuing)):
                tests = paired_tests(_subset(off, users), _subset(data, users), "test", ["recall@10", "ndcg@10"])
                row["slices"][name] = {r["key"]: {"mean": r["mean_b"], "diff": r["diff"], "p": r["p"]}
                                       for r in tests}
                row["slices"][name]["users"] = len(users)
    return {"rows": rows, "new_session_users": len(opening), "test_users": len(all_users),
            "cpu_minutes": cpu_minutes}


def pair(rows: dict[str, Any], a: str, b: str, key: str = "full/ndcg@10") -> dict[str, float]:
    """Paired test of row ``b`` against row ``a`` on ``key`` (per-user means over seeds)."""
    test = {r["key"]: r for r in paired_tests(load_results(rows[a]["seeds_file"]),
                                               load_results(rows[b]["seeds_file"]), "test")}[key]
    return {"diff": test["diff"], "p": test["p"]}


def claims(rows: dict[str, Any]) -> dict[str, Any]:
    """The paper's claims: the full model beats switches off, and the best combination (by N@10
    over all items) beats RecBole's SASRec and BERT4Rec, each by more than the seed spread (the
    larger sample std of the two rows), with the paired test's p. Judged on N@10 over all items
    (the entry's own keys) and, under ``protocols``, on every protocol of the table."""
    combos = [label for label in rows if rows[label]["model"] == "SessionBERT4Rec" and label != OFF]
    best = max(combos, key=lambda label: rows[label]["mean"][N_ALL]) if combos else None
    out: dict[str, Any] = {"best_row": best}
    for name, a, b in (("full_vs_off", OFF, FULL), ("best_vs_bert4rec", BERT4REC, best),
                       ("best_vs_sasrec", SASREC, best)):
        if a not in rows or b not in rows:
            continue
        verdicts = {}
        for protocol in PROTOCOLS:
            key = f"test/{protocol}/ndcg@10"
            diff = rows[b]["mean"][key] - rows[a]["mean"][key]
            spread = max(rows[a]["std"][key], rows[b]["std"][key])
            # one seed has no spread: no verdict
            holds = None if len(rows[a]["seeds"]) < 2 else bool(diff > spread)
            verdicts[protocol] = {**pair(rows, a, b, f"{protocol}/ndcg@10"), "spread": spread, "holds": holds}
        out[name] = {**verdicts["full"], "protocols": verdicts}
    return out


def cell(row: dict[str, Any], key: str) -> str:
    mean, std = row["mean"].get(key), row["std"].get(key)
    return "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"


def markdown_table(rows: dict[str, Any]) -> list[str]:
    head = "| Model | #params | " + " | ".join(f"{m[:1].upper()}@10 {HEADERS[p]}" for p, m in COLUMNS)
    head += " | N@10 All − off | p vs off | best epoch / run | train s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, row in rows.items():
        versus = row.get("vs_off", {}).get("full/ndcg@10")
        diff = "" if versus is None or label == OFF else f"{versus['diff']:+.4f}"
        p = "" if versus is None or label == OFF else f"{versus['p']:.3g}"
        lines.append(f"| {label} | {row['n_params']:,} | "
                     + " | ".join(cell(row, f"test/{p_}/{m}") for p_, m in COLUMNS)
                     + f" | {diff} | {p} | {row['best_epoch']:.0f} / {row['epochs_run']:.0f} | {row['train_seconds']:.0f} |")
    return lines


def slice_table(rows: dict[str, Any]) -> list[str]:
    lines = ["| Model | N@10 All, opens a session | − off | p | N@10 All, continues | − off | p |",
             "|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        cells = []
        for name in ("opens_session", "continues_session"):
            entry = row["slices"][name]["full/ndcg@10"]
            same = label == OFF
            cells += [f"{entry['mean']:.4f}", "" if same else f"{entry['diff']:+.4f}", "" if same else f"{entry['p']:.3g}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def describe_budget(recipe: dict[str, Any], facts: dict[str, Any]) -> str:
    patience = recipe["stopping_step"] * recipe["eval_step"]
    return (f"every row: {recipe['learner']} (lr {recipe['learning_rate']}, weight decay "
            f"{recipe['weight_decay']}), batch {recipe['train_batch_size']} sequences, epochs of "
            f"{recipe['epoch_steps'] or 'one pass of'} steps, at most {recipe['epochs']} epochs, "
            f"validation every {recipe['eval_step']} epochs, early stop after {patience} epochs "
            f"without gain, selection on valid {recipe['valid_metric']} under "
            f"{recipe['valid_protocol'] or 'RecBole full ranking'}")


def cost_note(payload: dict) -> str:
    """After the wall time: the runs the command found finished (why the wall time can be short)
    and the CPU time of all the runs (what the table costs on idle cores)."""
    before = payload.get("finished_before", 0)
    cpu = payload["summary"].get("cpu_minutes", 0)
    return ((f" ({before} of its {payload['runs']} runs were already finished and not trained again)" if before else "")
            + f"; the runs' CPU time (one torch thread each; data, training and evaluation) sums to {cpu:.1f} min, "
            f"i.e. about {cpu / 2:.0f} min wall on 2 idle cores with `--jobs 2`")


def trained_where(rows: dict[str, Any]) -> str:
    """Each device with the rows whose runs trained there, e.g. ``cpu: SASRec (RecBole), ... (6 runs)``."""
    labels: dict[str, dict[str, None]] = {}  # device -> its rows' labels, in table order
    runs: Counter[str] = Counter()
    for label, row in rows.items():
        for device in row["devices"]:
            labels.setdefault(device, {})[label] = None
            runs[device] += 1
    return "; ".join(f"{device}: {', '.join(names)} ({runs[device]} run{'s' * (runs[device] != 1)})"
                     for device, names in labels.items())


def write_outputs(out: Path, dataset: str, payload: dict[str, Any], command: str) -> tuple[Path, Path]:
    """``table2_<dataset>.md`` and ``.json`` in ``out`` (atomic writes)."""
    rows, facts, recipe = payload["rows"], payload["facts"], payload["recipe"]
    claim = payload["claims"]
    lines = [
        f"# Table 2 on {dataset}", "",
        f"Measured {datetime.date.today().isoformat()} by `{command}`: {payload['minutes']:.1f} min "
        f"wall on {payload['machine']}{cost_note(payload)}.", "",
        f"- Data: {facts['users']} users, {facts['items']} items, {facts['interactions']} interactions; "
        f"{payload['summary'].get('test_users', '?')} test users (one hit moves R@10 by "
        f"{1 / max(1, payload['summary'].get('test_users', 1)):.4f}), "
        f"{payload['summary'].get('new_session_users', 0)} of whose test targets open a new session.",
        f"- Sizes: hidden {facts['hidden_size']}, {facts['n_layers']} layers, {facts['n_heads']} heads, "
        f"max length {facts['MAX_ITEM_LIST_LENGTH']}; SessionBERT4Rec: {facts['train_regime']} regime, "
        f"{facts['padding_side']} padding, mask ratio {facts['mask_ratio']}, SSE m = {payload['m']}, "
        f"TAS dT = {payload['dt']} (W_T init: {facts['temporal_proj_init']}); RecBole's SASRec and BERT4Rec "
        "with their own yaml defaults at the same sizes, trained on RecBole's every-prefix rows.",
        f"- Budget, the same for {describe_budget(recipe, facts)}. No row was tuned.",
        f"- Trained on: {trained_where(rows)}.",
        f"- Seeds {payload['seeds']}; cells are mean ± sample std over seeds; `p vs off` is a paired "
        "t-test over test users (per-user values averaged over seeds) against switches off.", "",
        *markdown_table(rows), "",
    ]
    verdict = []
    for name, text in (("full_vs_off", "all three switches vs switches off"),
                       ("best_vs_bert4rec", f"best combination ({claim.get('best_row')}) vs RecBole's BERT4Rec"),
                       ("best_vs_sasrec", f"best combination ({claim.get('best_row')}) vs RecBole's SASRec")):
        if name not in claim:
            continue
        for protocol in ("full", "random100", "popular100"):
            c = claim[name]["protocols"][protocol]
            outcome = {True: "holds", False: "does not hold", None: "cannot be judged (one seed)"}[c["holds"]]
            verdict.append(f"- N@10 {HEADERS[protocol]}, {text}: {c['diff']:+.4f} (seed spread {c['spread']:.4f}, "
                           f"paired p {c['p']:.3g}): {outcome} by more than the seed spread.")
    lines += ["Claims (N@10; the issue's test is over all items, the paper reports all three protocols):", "",
              *verdict, ""]
    if payload["summary"].get("new_session_users"):
        lines += [f"Test targets that open a new session ({payload['summary']['new_session_users']} users) "
                  "and those that continue one, N@10 over all items, per-user means over seeds, paired "
                  "tests against switches off on the same users:", "", *slice_table(rows), ""]
    md = out / f"table2_{dataset}.md"
    js = out / f"table2_{dataset}.json"
    write_atomic(md, "\n".join(lines))
    write_atomic(js, json.dumps(payload, indent=1, default=str))
    return md, js


def machine(device: str = "cpu") -> str:
    """The cores, the GPU the runs trained on (``device`` cuda) and the load, for a table's header."""
    load = os.getloadavg()
    gpu = f" and a GPU ({torch.cuda.get_device_name()})" if device == "cuda" and torch.cuda.is_available() else ""
    return f"{os.cpu_count()} CPU cores{gpu}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end"


def headline(payload: dict[str, Any]) -> dict[str, Any]:
    """The last stdout line's JSON."""
    rows, claim = payload["rows"], payload["claims"]

    def n_all(label: str | None) -> float | None:
        return None if label not in rows else round(rows[label]["mean"][N_ALL], 4)

    line = {
        "dataset": payload["dataset"], "seeds": payload["seeds"],
        "off_ndcg10_all": n_all(OFF), "full_ndcg10_all": n_all(FULL),
        "best_ndcg10_all": n_all(claim.get("best_row")), "best_row": claim.get("best_row"),
        "bert4rec_ndcg10_all": n_all(BERT4REC), "sasrec_ndcg10_all": n_all(SASREC),
        "off_std": None if OFF not in rows else round(rows[OFF]["std"][N_ALL], 4),
        "p_full_vs_off": None if "full_vs_off" not in claim else round(claim["full_vs_off"]["p"], 4),
        "p_best_vs_bert4rec": None if "best_vs_bert4rec" not in claim else round(claim["best_vs_bert4rec"]["p"], 4),
        "p_best_vs_sasrec": None if "best_vs_sasrec" not in claim else round(claim["best_vs_sasrec"]["p"], 4),
        "new_session_users": payload["summary"].get("new_session_users", 0),
        "minutes": round(payload["minutes"], 1),
        "cpu_minutes": round(payload["summary"].get("cpu_minutes", 0.0), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    if line["new_session_users"] and OFF in rows and FULL in rows:
        for label, key in ((OFF, "off"), (FULL, "full")):
            entry = rows[label]["slices"]["opens_session"]["full/ndcg@10"]
            line[f"{key}_ndcg10_all_opens_session"] = round(entry["mean"], 4)
        line["p_full_vs_off_opens_session"] = round(rows[FULL]["slices"]["opens_session"]["full/ndcg@10"]["p"], 4)
    return line

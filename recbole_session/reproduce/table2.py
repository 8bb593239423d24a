"""Paper Table 2: SASRec, BERT4Rec and the eight switch combinations of SessionBERT4Rec, and
V-SKNN, the non-neural session kNN baseline (not in the paper; docs/vsknn.md).

Every row is trained with the same recipe, data and seeds (see :func:`runner.shared_recipe`),
selected on valid NDCG@10 under random-100, and evaluated under random-100, popular-100 and all
items. Cells are mean ± sample standard deviation over seeds. Each row's difference to "switches
off", and each claim, is B - A with the 95 % interval and p of the hierarchical bootstrap over
the paired seeds and the users (:mod:`recbole_session.evaluation.stats`, read from the rows'
run files, one per seed), p adjusted by Holm over the family it belongs to, and the interval's
verdict. The "best combination" is chosen on the valid split and reported once on test. Test
targets that open a new session (a dataset variant that keeps single-item sessions has them)
are reported as a separate slice.
"""

from __future__ import annotations

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
from recbole_session.evaluation.stats import RESAMPLES, holm
from recbole_session.files import write_atomic
from recbole_session.reproduce.runner import PROTOCOLS, RunSpec, load_run

OFF = "BERT4Rec (switches off)"
FULL = "+ ST + SSE + TAS"
SASREC = "SASRec (RecBole)"
BERT4REC = "BERT4Rec (RecBole)"
KNN = "V-SKNN (kNN)"
# V-SKNN learns nothing: its index is built with the model, so one epoch is its whole training
# (the shared recipe's epoch budget would only repeat the same validation)
KNN_OVERRIDES = {"epochs": 1}
# paper order: BERT4Rec, + ST, + SSE, + TAS, + ST + SSE, + ST + TAS, + SSE + TAS, all three
COMBOS = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
COLUMNS = [(p, m) for p in PROTOCOLS for m in ("recall@10", "ndcg@10")]
HEADERS = {"random100": "Ran.", "popular100": "Pop.", "full": "All"}
N_ALL = "test/full/ndcg@10"
# the best combination is chosen on this (valid N@10 over all items), never on a test number
N_VALID = "valid/full/ndcg@10"
# the metrics of the rows' differences to switches off, and the one the table's column shows
VERSUS_METRICS = ["recall@10", "ndcg@10"]
VERSUS_KEY = "full/ndcg@10"
# (claim, row A, row B's role, text): B - A; "best" is the combination chosen on valid
CLAIMS = (("full_vs_off", OFF, FULL, "all three switches vs switches off"),
          ("best_vs_bert4rec", BERT4REC, "best", "best combination ({best}) vs RecBole's BERT4Rec"),
          ("best_vs_sasrec", SASREC, "best", "best combination ({best}) vs RecBole's SASRec"))
# the device of a run finished before runs recorded it
UNRECORDED = "not recorded"
ONE_SEED = (" With one seed the bootstrap cannot draw seeds: the intervals hold the users' variance "
            "only, not the seeds'.")


def combo_label(st: int, se: int, te: int) -> str:
    parts = [name for name, on in (("+ ST", st), ("+ SSE", se), ("+ TAS", te)) if on]
    return " ".join(parts) or OFF


def switches(st: int, se: int, te: int, m: int, dt: int) -> dict[str, Any]:
    return {"session_token": bool(st), "max_session_segments": m if se else 0, "temporal_dim": dt if te else 0}


def table_rows(m: int, dt: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, overrides): RecBole's SASRec and BERT4Rec, the 8 combinations, then V-SKNN."""
    rows = [(SASREC, "SASRec", {}), (BERT4REC, "BERT4Rec", {})]
    rows += [(combo_label(*c), "SessionBERT4Rec", switches(*c, m, dt)) for c in COMBOS]
    rows.append((KNN, "VSKNN", dict(KNN_OVERRIDES)))
    return rows


def specs_for(rows: list[tuple[str, str, dict]], dataset: str, seeds: list[int], shared: dict,
              config_files: list[str]) -> dict[str, list[RunSpec]]:
    return {label: [RunSpec(label, model, dataset, seed, overrides, shared, tuple(config_files))
                    for seed in seeds] for label, model, overrides in rows}


def seed_set(row: dict[str, Any], cache: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The row's run files, one per seed (loaded once per ``cache``): the per-user values of
    each seed, which the bootstrap resamples (a seeds file's mean would hide the seeds)."""
    for path in row["run_files"]:
        if path not in cache:
            cache[path] = load_results(path)
    return [cache[path] for path in row["run_files"]]


def versus(a: list[dict[str, Any]], b: list[dict[str, Any]], users: set[str] | None = None,
           opens: bool | None = None) -> dict[str, Any]:
    """B - A of every protocol's R@10 and N@10 on test: mean of B, difference, interval, p, verdict."""
    return {r["key"]: {"mean": r["mean_b"], "diff": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                       "p": r["p"], "verdict": r["verdict"], "seeds": r["seeds"]}
            for r in paired_tests(a, b, "test", VERSUS_METRICS, users, opens)}


def summarize(specs: dict[str, list[RunSpec]], paths: dict[str, list[Path]], work: Path,
              reference: str = OFF) -> dict[str, Any]:
    """Per row: mean/std over seeds, the seeds file, its run files (one per seed), and B - A
    against the ``reference`` row with the bootstrap's interval (all users, and the new-session
    slice when there is one); the p of the column the table shows (N@10 over all items) adjusted
    by Holm over the rows compared with the reference."""
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
            "run_files": [str(p) for p in paths[label]],
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
    cache: dict[str, dict[str, Any]] = {}
    off = seed_set(rows[reference], cache)
    opening = rows[reference]["new_session_users"]
    all_users = list(dict.fromkeys(off[0]["per_user"]["test"]["users"]))
    flags = off[0]["per_user"]["test"].get("opens") or []
    if flags:  # per-target flags: a slice is targets (a user of the last-session split has both kinds)
        n_open = int(sum(flags))
        slices = (("opens_session", {"opens": True}, n_open), ("continues_session", {"opens": False}, len(flags) - n_open))
    else:  # runs written before the flags: one target per user, sliced by user
        continuing = [u for u in all_users if u not in set(opening)]
        n_open = len(opening)
        slices = (("opens_session", {"users": set(opening)}, len(opening)),
                  ("continues_session", {"users": set(continuing)}, len(continuing)))
    for row in rows.values():
        data = seed_set(row, cache)
        row["vs_off"] = versus(off, data)
        if n_open:
            row["slices"] = {name: {**versus(off, data, **selector), "targets": count}
                             for name, selector, count in slices if count}
    # Holm over the rows compared with the reference, on the column the table shows
    compared = [label for label in rows if label != reference]
    for label, p_holm in zip(compared, holm([rows[label]["vs_off"][VERSUS_KEY]["p"] for label in compared])):
        rows[label]["vs_off"][VERSUS_KEY]["p_holm"] = p_holm
    return {"rows": rows, "new_session_users": n_open, "test_users": len(all_users),
            "test_targets": len(off[0]["per_user"]["test"]["users"]), "cpu_minutes": cpu_minutes}


def pair(rows: dict[str, Any], a: str, b: str, cache: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """B - A of row ``b`` against row ``a`` on test N@10 of every protocol (keys like
    ``full/ndcg@10``), from the rows' run files: mean, difference, interval, p, verdict."""
    cache = {} if cache is None else cache
    return versus(seed_set(rows[a], cache), seed_set(rows[b], cache))


def best_combination(rows: dict[str, Any]) -> str | None:
    """The combination of switches (switches off is the baseline, never a candidate) with the
    highest VALID N@10 over all items: chosen without a test number, then reported once on test."""
    combos = [label for label in rows if rows[label]["model"] == "SessionBERT4Rec" and label != OFF]
    return max(combos, key=lambda label: rows[label]["mean"][N_VALID]) if combos else None


def claims(rows: dict[str, Any]) -> dict[str, Any]:
    """The paper's claims: the full model beats switches off, and the best combination (chosen
    on valid N@10 over all items, :func:`best_combination`) beats RecBole's SASRec and BERT4Rec.
    Each on test N@10 under every protocol (``protocols``; the entry's own keys are N@10 over
    all items, the issue's test): B - A, the bootstrap's 95 % interval and p over seeds and
    users, p adjusted by Holm over all the claims' tests of the table (claims x protocols), and
    the interval's verdict. ``<claim>_ci_low`` / ``<claim>_ci_high``: N@10 over all items."""
    best = best_combination(rows)
    out: dict[str, Any] = {"best_row": best, "selection": N_VALID, "resamples": RESAMPLES}
    cache: dict[str, dict[str, Any]] = {}
    for name, a, b, _ in CLAIMS:
        b = best if b == "best" else b
        if a not in rows or b not in rows:
            continue
        tests = pair(rows, a, b, cache)
        verdicts = {protocol: tests[f"{protocol}/ndcg@10"] for protocol in PROTOCOLS}
        out[name] = {**verdicts["full"], "protocols": verdicts}
    family = [(name, protocol) for name, *_ in CLAIMS if name in out for protocol in PROTOCOLS]
    for (name, protocol), p_holm in zip(family, holm([out[n]["protocols"][p]["p"] for n, p in family])):
        out[name]["protocols"][protocol]["p_holm"] = p_holm
    for name, *_ in CLAIMS:
        if name in out:
            out[name]["p_holm"] = out[name]["protocols"]["full"]["p_holm"]
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = out[name]["ci_low"], out[name]["ci_high"]
    return out


def cell(row: dict[str, Any], key: str) -> str:
    mean, std = row["mean"].get(key), row["std"].get(key)
    return "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"


def markdown_table(rows: dict[str, Any]) -> list[str]:
    head = "| Model | #params | " + " | ".join(f"{m[:1].upper()}@10 {HEADERS[p]}" for p, m in COLUMNS)
    head += " | N@10 All − off [95 % CI] | p (Holm) | vs off | best epoch / run | train s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, row in rows.items():
        entry = row.get("vs_off", {}).get(VERSUS_KEY)
        if entry is None or label == OFF:
            diff = p = word = ""
        else:
            diff = f"{entry['diff']:+.4f} {interval(entry)}"
            p = f"{entry['p']:.3g} ({entry['p_holm']:.3g})"
            word = entry["verdict"]
        lines.append(f"| {label} | {row['n_params']:,} | "
                     + " | ".join(cell(row, f"test/{p_}/{m}") for p_, m in COLUMNS)
                     + f" | {diff} | {p} | {word} | {row['best_epoch']:.0f} / {row['epochs_run']:.0f} | {row['train_seconds']:.0f} |")
    return lines


def interval(entry: dict[str, Any]) -> str:
    return f"[{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}]"


def slice_table(rows: dict[str, Any]) -> list[str]:
    lines = ["| Model | N@10 All, opens a session | − off [95 % CI] | p | vs off "
             "| N@10 All, continues | − off [95 % CI] | p | vs off |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        cells = []
        for name in ("opens_session", "continues_session"):
            entry = row["slices"].get(name, {}).get(VERSUS_KEY)
            if entry is None:  # no target of that kind
                cells += ["n/a", "", "", ""]
                continue
            same = label == OFF
            cells += [f"{entry['mean']:.4f}", "" if same else f"{entry['diff']:+.4f} {interval(entry)}",
                      "" if same else f"{entry['p']:.3g}", "" if same else entry["verdict"]]
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
    # files written before targets were counted have one target per test user
    targets = payload["summary"].get("test_targets", payload["summary"].get("test_users", "?"))
    lines = [
        f"# Table 2 on {dataset}", "",
        f"Measured {datetime.date.today().isoformat()} by `{command}`: {payload['minutes']:.1f} min "
        f"wall on {payload['machine']}{cost_note(payload)}.", "",
        f"- Data: {facts['users']} users, {facts['items']} items, {facts['interactions']} interactions; "
        f"{payload['summary'].get('test_users', '?')} test users, {targets} test targets (one hit "
        f"moves R@10 by {1 / max(1, targets if isinstance(targets, int) else 1):.4f}), "
        f"{payload['summary'].get('new_session_users', 0)} of whose test targets open a new session.",
        f"- Sizes: hidden {facts['hidden_size']}, {facts['n_layers']} layers, {facts['n_heads']} heads, "
        f"max length {facts['MAX_ITEM_LIST_LENGTH']}; SessionBERT4Rec: {facts['train_regime']} regime, "
        f"{facts['padding_side']} padding, mask ratio {facts['mask_ratio']}, SSE m = {payload['m']}, "
        f"TAS dT = {payload['dt']} (W_T init: {facts['temporal_proj_init']}); RecBole's SASRec and BERT4Rec "
        "with their own yaml defaults at the same sizes, trained on RecBole's every-prefix rows.",
        f"- Budget, the same for {describe_budget(recipe, facts)}. No row was tuned.",
        f"- Trained on: {trained_where(rows)}.",
        f"- Seeds {payload['seeds']}; cells are mean ± sample std over seeds. `N@10 All − off` is the "
        f"row minus switches off on test N@10 over all items with its 95 % percentile interval from a "
        f"hierarchical bootstrap ({RESAMPLES} resamples of the paired seeds and of the test users as "
        "clusters, one user draw for all the drawn seeds; each seed's per-user values from its run "
        "file); `p` is the two-sided "
        "bootstrap p of the same resamples, in brackets adjusted by Holm over the rows compared with "
        "switches off; `vs off` is the interval's verdict: better (above 0), worse (below 0) or not "
        f"separated.{ONE_SEED if len(payload['seeds']) < 2 else ''}", "",
        *markdown_table(rows), "",
    ]
    verdict = []
    for name, _, _, text in CLAIMS:
        if name not in claim:
            continue
        for protocol in ("full", "random100", "popular100"):
            c = claim[name]["protocols"][protocol]
            verdict.append(f"- N@10 {HEADERS[protocol]}, {text.format(best=claim.get('best_row'))}: "
                           f"{c['diff']:+.4f}, 95 % CI {interval(c)}, p {c['p']:.3g} (Holm {c['p_holm']:.3g}): "
                           f"{c['verdict']}.")
    lines += [f"Claims (test N@10; the issue's test is over all items, the paper reports all three protocols). "
              f"The best combination ({claim.get('best_row')}) is the one with the highest valid N@10 over all "
              "items, chosen before any test number is read and reported once on test. Each claim: B − A, the "
              "bootstrap's 95 % interval, its p and, in brackets, p adjusted by Holm over the table's "
              f"{sum(len(PROTOCOLS) for name, *_ in CLAIMS if name in claim)} claim tests (claims × protocols); "
              "the verdict follows the interval only.", "", *verdict, ""]
    if payload["summary"].get("new_session_users"):
        lines += [f"Test targets that open a new session ({payload['summary']['new_session_users']} targets) "
                  "and those that continue one, N@10 over all items, mean over seeds, B − A against "
                  "switches off on the same users with the bootstrap's interval, p (not adjusted) and "
                  "verdict:", "", *slice_table(rows), ""]
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
        "dataset": payload["dataset"], "split": payload.get("split", "loo"),
        "targets": payload["summary"].get("test_targets"), "seeds": payload["seeds"],
        "off_ndcg10_all": n_all(OFF), "full_ndcg10_all": n_all(FULL),
        "best_ndcg10_all": n_all(claim.get("best_row")), "best_row": claim.get("best_row"),
        "bert4rec_ndcg10_all": n_all(BERT4REC), "sasrec_ndcg10_all": n_all(SASREC),
        "off_std": None if OFF not in rows else round(rows[OFF]["std"][N_ALL], 4),
        **{f"{field}_{name}": None if name not in claim else round(claim[name][field], 4)
           for name, *_ in CLAIMS for field in ("p", "p_holm")},
        **{f"{name}_{field}": None if name not in claim else round(claim[name][field], 4)
           for name, *_ in CLAIMS for field in ("ci_low", "ci_high")},
        **{f"{name}_verdict": claim[name]["verdict"] if name in claim else None for name, *_ in CLAIMS},
        "new_session_users": payload["summary"].get("new_session_users", 0),
        "minutes": round(payload["minutes"], 1),
        "cpu_minutes": round(payload["summary"].get("cpu_minutes", 0.0), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    if line["new_session_users"] and OFF in rows and FULL in rows:
        for label, key in ((OFF, "off"), (FULL, "full")):
            entry = rows[label]["slices"]["opens_session"]["full/ndcg@10"]
            line[f"{key}_ndcg10_all_opens_session"] = round(entry["mean"], 4)
        opens = rows[FULL]["slices"]["opens_session"][VERSUS_KEY]
        line["p_full_vs_off_opens_session"] = round(opens["p"], 4)
        line["full_vs_off_opens_session_ci_low"] = round(opens["ci_low"], 4)
        line["full_vs_off_opens_session_ci_high"] = round(opens["ci_high"], 4)
    return line

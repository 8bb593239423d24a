"""The session additions in three model families, as the journal version claims: for BERT4Rec,
SASRec and GRU4Rec, the base model (the family's session model with every switch off, which is
the RecBole model's parameters and scores), each switch alone (ST, SSE, TAS) and all three, and
RecBole's own SASRec, the row to beat over all items.

Seol, Ko, Lee: "Parameter-efficiently Leveraging Session Information in Deep Learning based
Session-aware Sequential Recommendation", IEEE Access 13, pp. 35555-35566, 2025 (the additions
"are designed to be easily integrated into both RNN-based and attention-based models", "up to a
10 % performance improvement with only 1 % additional parameters").

Every row trains with the same recipe (:func:`~recbole_session.reproduce.runner.shared_recipe`:
SessionBERT4Rec's learner, batch, fixed-step epochs, budget and early stopping) and selection
rule (valid N@10 under random-100), at each model's own default sizes. Within a family each row
is compared with its base, B - A on test N@10 over all items with the 95 % interval and p of the
hierarchical bootstrap over the paired seeds and users (:func:`table2.summarize`), p adjusted by
Holm over the family's rows; the three full-vs-base claims are adjusted by Holm together. The
best session model (any family, any switches on) is chosen on valid N@10 over all items and
compared once on test with RecBole's SASRec. Each row also reports its parameters over the base
(%), and its training seconds per epoch over the base's (runs trained side by side with
``--jobs 2`` share the cores: a rough ratio; ``benchmarks/train_speed.py`` times epochs alone).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from recbole_session.evaluation.stats import RESAMPLES, holm
from recbole_session.files import write_atomic
from recbole_session.literals import load_yaml
from recbole_session.paths import properties_dir
from recbole_session.reproduce import table2
from recbole_session.reproduce.runner import RunSpec

# family key -> (RecBole's model, its session model)
FAMILIES = {"bert4rec": ("BERT4Rec", "SessionBERT4Rec"), "sasrec": ("SASRec", "SessionSASRec"),
            "gru4rec": ("GRU4Rec", "SessionGRU4Rec")}
# (switch key, (ST, SSE, TAS)): the base, each switch alone, all three
SWITCH_ROWS = (("off", (0, 0, 0)), ("st", (1, 0, 0)), ("sse", (0, 1, 0)), ("tas", (0, 0, 1)),
               ("st+sse+tas", (1, 1, 1)))
OFF_KEY, FULL_KEY = "off", "st+sse+tas"
SASREC_KEY = "sasrec-recbole"
SASREC_LABEL = table2.SASREC
N_ALL, N_VALID, VERSUS_KEY = table2.N_ALL, table2.N_VALID, table2.VERSUS_KEY
# the switch sizes when a model's yaml leaves them out
DEFAULT_SEGMENTS, DEFAULT_TEMPORAL_DIM = 3, 16


def row_keys() -> list[str]:
    """Every ``--rows`` key: ``<family>:<switches>`` and RecBole's SASRec."""
    return [f"{family}:{key}" for family in FAMILIES for key, _ in SWITCH_ROWS] + [SASREC_KEY]


def select(wanted: list[str]) -> list[str]:
    """The row keys ``wanted`` names: a full key, a family (all its rows) or a switch key (that row
    of every family); empty = all. Raises ``ValueError`` naming the unknown ones."""
    keys = row_keys()
    if not wanted:
        return keys
    chosen, unknown = [], []
    for want in wanted:
        hits = [k for k in keys if want in (k, k.split(":")[0], k.split(":")[-1])]
        chosen += hits
        if not hits:
            unknown.append(want)
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)} (known: a family {', '.join(FAMILIES)}, a switch set "
                         f"{', '.join(k for k, _ in SWITCH_ROWS)}, {SASREC_KEY}, or family:switches)")
    return [k for k in keys if k in chosen]


def label_of(key: str) -> str:
    if key == SASREC_KEY:
        return SASREC_LABEL
    family, switch = key.split(":")
    base = FAMILIES[family][0]
    st, se, te = dict(SWITCH_ROWS)[switch]
    return f"{base} (switches off)" if switch == OFF_KEY else f"{base} {table2.combo_label(st, se, te)}"


def switch_sizes(model: str) -> tuple[int, int]:
    """The model's own SSE m and TAS dT (its yaml): the sizes a switch turns on."""
    sizes = load_yaml((properties_dir() / "model" / f"{model}.yaml").read_text(encoding="utf-8")) or {}
    return int(sizes.get("max_session_segments") or DEFAULT_SEGMENTS), int(sizes.get("temporal_dim") or DEFAULT_TEMPORAL_DIM)


def rows_for(keys: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, model, overrides) of each key, in table order."""
    rows = []
    for key in keys:
        if key == SASREC_KEY:
            rows.append((SASREC_LABEL, "SASRec", {}))
            continue
        family, switch = key.split(":")
        model = FAMILIES[family][1]
        rows.append((label_of(key), model, table2.switches(*dict(SWITCH_ROWS)[switch], *switch_sizes(model))))
    return rows


def family_of(label: str) -> str | None:
    return next((f for f in FAMILIES for k, _ in SWITCH_ROWS if label_of(f"{f}:{k}") == label), None)


def per_epoch(row: dict[str, Any]) -> float:
    return row["train_seconds"] / max(1.0, row["epochs_run"])


def summarize(specs: dict[str, list[RunSpec]], paths: dict[str, list[Path]], work: Path) -> dict[str, Any]:
    """Each family's rows against its base (see the module docstring) and their slices, each
    family's counts (``families``) and the runs' CPU minutes, as :func:`table2.summarize`."""
    families: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    for family in FAMILIES:
        labels = [label for label in specs if family_of(label) == family]
        if not labels:
            continue
        base = label_of(f"{family}:{OFF_KEY}")
        summary = table2.summarize({label: specs[label] for label in labels}, {label: paths[label] for label in labels},
                                   work, reference=base)
        for row in summary["rows"].values():
            if base in summary["rows"]:
                off = summary["rows"][base]
                row["params_over_base_pct"] = 100.0 * (row["n_params"] - off["n_params"]) / off["n_params"]
                row["epoch_time_ratio"] = per_epoch(row) / per_epoch(off)
            row["family"] = family
        rows.update(summary["rows"])
        families[family] = {k: v for k, v in summary.items() if k != "rows"}
    if SASREC_LABEL in specs:
        rows.update(table2.summarize({SASREC_LABEL: specs[SASREC_LABEL]}, {SASREC_LABEL: paths[SASREC_LABEL]},
                                     work, reference="")["rows"])  # no reference: its own row only
    cpu_minutes = sum(row["run_cpu_seconds"] for row in rows.values()) / 60
    return {"rows": rows, "families": families, "cpu_minutes": cpu_minutes}


def claims(rows: dict[str, Any]) -> dict[str, Any]:
    """Per family, all three switches vs the base (N@10 over all items; Holm over the families),
    and the best session model chosen on valid vs RecBole's SASRec."""
    out: dict[str, Any] = {"selection": N_VALID, "resamples": RESAMPLES}
    tested = []
    for family in FAMILIES:
        off, full = label_of(f"{family}:{OFF_KEY}"), label_of(f"{family}:{FULL_KEY}")
        if off in rows and full in rows:
            entry = rows[full]["vs_off"][VERSUS_KEY]
            out[family] = {"base": off, "full": full, "base_ndcg10_all": rows[off]["mean"][N_ALL],
                           "full_ndcg10_all": rows[full]["mean"][N_ALL], **entry,
                           "params_over_base_pct": rows[full]["params_over_base_pct"],
                           "epoch_time_ratio": rows[full]["epoch_time_ratio"]}
            tested.append(family)
    for family, p_holm in zip(tested, holm([out[f]["p"] for f in tested])):
        out[family]["p_holm_families"] = p_holm
    candidates = [label for label, row in rows.items()
                  if row.get("family") and label != label_of(f"{row['family']}:{OFF_KEY}")]
    if candidates:
        best = max(candidates, key=lambda label: rows[label]["mean"][N_VALID])
        out["best_row"] = best
        if SASREC_LABEL in rows:
            out["best_vs_sasrec"] = table2.pair(rows, SASREC_LABEL, best)[VERSUS_KEY]
    return out


def markdown(payload: dict[str, Any]) -> str:
    rows, claim = payload["rows"], payload["claims"]
    head = ("| Family | Row | #params | over base | N@10 All | N@10 Ran. | R@10 All | N@10 All − base [95 % CI] "
            "| p (Holm) | vs base | s / epoch (× base) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, row in rows.items():
        entry = row.get("vs_off", {}).get(VERSUS_KEY)
        is_base = row.get("family") is None or label == label_of(f"{row['family']}:{OFF_KEY}")
        diff = "" if is_base or entry is None else f"{entry['diff']:+.4f} {table2.interval(entry)}"
        p = "" if is_base or entry is None else f"{entry['p']:.3g} ({entry['p_holm']:.3g})"
        word = "" if is_base or entry is None else entry["verdict"]
        over = f"{row['params_over_base_pct']:+.2f} %" if "params_over_base_pct" in row else ""
        ratio = f"{per_epoch(row):.2f} ({row['epoch_time_ratio']:.2f})" if "epoch_time_ratio" in row else f"{per_epoch(row):.2f}"
        lines.append(f"| {row.get('family') or 'RecBole'} | {label} | {row['n_params']:,} | {over} | "
                     f"{table2.cell(row, N_ALL)} | {table2.cell(row, 'test/random100/ndcg@10')} | "
                     f"{table2.cell(row, 'test/full/recall@10')} | {diff} | {p} | {word} | {ratio} |")
    verdicts = []
    for family in FAMILIES:
        if family in claim:
            c = claim[family]
            verdicts.append(f"- {FAMILIES[family][0]}: {c['full']} − {c['base']}: {c['diff']:+.4f}, 95 % CI "
                            f"{table2.interval(c)}, p {c['p']:.3g} (Holm over the families "
                            f"{c['p_holm_families']:.3g}): {c['verdict']}; parameters "
                            f"{c['params_over_base_pct']:+.2f} %, time per epoch × {c['epoch_time_ratio']:.2f}.")
    if "best_vs_sasrec" in claim:
        c = claim["best_vs_sasrec"]
        verdicts.append(f"- Best session model on valid N@10 over all items ({claim['best_row']}) − RecBole's SASRec "
                        f"on test: {c['diff']:+.4f}, 95 % CI {table2.interval(c)}, p {c['p']:.3g}: {c['verdict']}.")
    slices = []
    for family, summary in payload["summary"]["families"].items():
        if summary.get("new_session_users"):
            full = rows.get(label_of(f"{family}:{FULL_KEY}"), {}).get("slices", {}).get("opens_session", {}).get(VERSUS_KEY)
            if full:
                slices.append(f"- {FAMILIES[family][0]}, the {summary['new_session_users']} test targets that open a "
                              f"session: all three − base {full['diff']:+.4f}, 95 % CI {table2.interval(full)}, "
                              f"p {full['p']:.3g}: {full['verdict']}.")
    recipe = payload["recipe"]
    text = [
        f"# The session additions in three families on {payload['dataset']}", "",
        f"Measured {datetime.date.today().isoformat()} by `{payload['command']}`: {payload['minutes']:.1f} min wall "
        f"on {payload['machine']}{table2.cost_note(payload)}.", "",
        f"- Data: {payload['facts']['users']} users, {payload['facts']['items']} items, "
        f"{payload['facts']['interactions']} interactions; split {payload['split']}.",
        f"- Budget, the same for {table2.describe_budget(recipe, payload['facts'])}; each model at its own "
        "default sizes; no row was tuned.",
        f"- Seeds {payload['seeds']}; cells are mean ± sample std over seeds; `− base` is B − A on test N@10 over "
        f"all items against the family's base, 95 % interval of a hierarchical bootstrap ({RESAMPLES} resamples "
        "of the paired seeds and the users), p two-sided, in brackets Holm over the family's rows; `vs base` is "
        f"the interval's verdict.{table2.ONE_SEED if len(payload['seeds']) < 2 else ''}",
        f"- Trained on: {table2.trained_where(rows)}.", "",
        *lines, "", "Claims (test N@10 over all items):", "", *(verdicts or ["- none: a family lacks its base or full row."]),
    ]
    if slices:
        text += ["", "Targets that open a new session (N@10 over all items):", "", *slices]
    return "\n".join(text) + "\n"


def headline(payload: dict[str, Any]) -> dict[str, Any]:
    """The last stdout line's JSON: ``seeds`` and, per family, ``<family>_base_ndcg10_all``,
    ``<family>_full_ndcg10_all``, ``<family>_ci_low``, ``<family>_ci_high`` (and p, verdict)."""
    claim = payload["claims"]
    line: dict[str, Any] = {"dataset": payload["dataset"], "split": payload["split"], "seeds": payload["seeds"]}
    for family in FAMILIES:
        c = claim.get(family)
        for field, name in (("base_ndcg10_all", "base_ndcg10_all"), ("full_ndcg10_all", "full_ndcg10_all"),
                            ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p", "p"), ("params_over_base_pct", "params_pct"),
                            ("epoch_time_ratio", "epoch_ratio")):
            line[f"{family}_{name}"] = None if c is None else round(c[field], 4)
        line[f"{family}_verdict"] = None if c is None else c["verdict"]
    line["best_row"] = claim.get("best_row")
    best = claim.get("best_vs_sasrec")
    for field in ("diff", "ci_low", "ci_high", "p"):
        line[f"best_vs_sasrec_{field}"] = None if best is None else round(best[field], 4)
    line["minutes"] = round(payload["minutes"], 1)
    return line


def write_outputs(out: Path, name: str, payload: dict[str, Any]) -> tuple[Path, Path]:
    """``families_<name>.md`` and ``.json`` in ``out`` (atomic writes)."""
    md, js = out / f"families_{name}.md", out / f"families_{name}.json"
    write_atomic(md, markdown(payload))
    write_atomic(js, json.dumps(payload, indent=1, default=str))
    return md, js

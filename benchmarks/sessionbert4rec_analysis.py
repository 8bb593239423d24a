"""Why the session switches help or do not: evidence from a finished ``reproduce table2`` run.

Reads the runs of ``python -m recbole_session.reproduce table2 --keep-checkpoints`` (its
``--work`` folder) and reports, on the test users:

1. the data's session statistics (sessions per user, items per session, the target's gap);
2. per-user analysis: the full model's N@10 (all items) minus switches off, per user (averaged
   over seeds), by the number of sessions in the history, the length of the last session, and
   whether the target opens a new session; with paired t-tests inside each group;
3. what TAS learns, from the full model's checkpoints: how far the TE frequencies moved from
   their initialisation, the spread of the temporal attention term against the content term
   in every layer, and N@10 when the temporal signal is removed at inference (every time in the
   input replaced by one constant: ``T' T'^T`` is then the same for every pair and the softmax
   ignores it), and when the session signal is removed (ST and SSE inputs of a single session).

Writes ``benchmarks/results/sessionbert4rec_analysis_<dataset>.md`` and a section of
``docs/benchmarks.md``; the last stdout line is one JSON object.

    python benchmarks/sessionbert4rec_analysis.py --dataset ml-100k --work /tmp/table2-runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recbole.data.interaction import Interaction  # noqa: E402

import recbole_session  # noqa: E402,F401
from recbole_session.build import from_checkpoint  # noqa: E402
from recbole_session.evaluation import evaluate_protocols  # noqa: E402
from recbole_session.evaluation.results import load_results  # noqa: E402
from recbole_session.files import update_section, write_atomic  # noqa: E402
from recbole_session.reproduce.table2 import FULL, OFF  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "full/ndcg@10"


def row_files(work: Path, dataset: str, label_slug: str) -> tuple[Path, list[Path]]:
    """The seeds file and the per-seed run files of a row (by its label's slug)."""
    folder = work / dataset
    seeds = sorted(folder.glob(f"{label_slug}-*-seeds.results.json"))
    if len(seeds) != 1:
        raise SystemExit(f"{folder}: expected one seeds file of '{label_slug}', found {len(seeds)}")
    key = seeds[0].name.rsplit("-seeds", 1)[0]
    runs = sorted(folder.glob(f"{key}-seed*.results.json"))
    return seeds[0], runs


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


def user_features(test_data, config) -> dict[str, dict[str, float]]:
    """Per test user (token): sessions in the history window, length of the last history session,
    history length, target gap (hours) and whether the target opens a new session."""
    dataset = test_data._dataset
    out = {}
    for interaction, *_ in test_data:
        length = interaction["item_length"]
        sessions = interaction["session_id_list"]
        times = interaction["timestamp_list"]
        last = (length - 1).unsqueeze(1)
        last_session = sessions.gather(1, last)
        valid = torch.arange(sessions.size(1)).unsqueeze(0) < length.unsqueeze(1)
        changes = ((sessions[:, 1:] != sessions[:, :-1]) & valid[:, 1:]).sum(1) + 1
        last_len = ((sessions == last_session) & valid).sum(1)
        gap = (interaction["timestamp"] - times.gather(1, last).squeeze(1)) / 3600
        opens = interaction["session_id"] != last_session.squeeze(1)
        tokens = dataset.id2token(dataset.uid_field, interaction["user_id"].numpy())
        for i, token in enumerate(tokens):
            out[str(token)] = {"sessions": int(changes[i]), "last_session_len": int(last_len[i]),
                               "history": int(length[i]), "gap_hours": float(gap[i]), "opens": bool(opens[i])}
    return out


def per_user_table(off: dict, full: dict, features: dict) -> list[str]:
    users = off["per_user"]["test"]["users"]
    a = np.asarray(off["per_user"]["test"]["per_user"][KEY])
    b = np.asarray(full["per_user"]["test"]["per_user"][KEY])
    groups = {
        "sessions in the history window: 1-2": lambda f: f["sessions"] <= 2,
        "sessions in the history window: 3-5": lambda f: 3 <= f["sessions"] <= 5,
        "sessions in the history window: 6+": lambda f: f["sessions"] >= 6,
        "last session before the target: < 5 items": lambda f: f["last_session_len"] < 5,
        "last session before the target: 5-19 items": lambda f: 5 <= f["last_session_len"] < 20,
        "last session before the target: 20+ items": lambda f: f["last_session_len"] >= 20,
        "target opens a new session": lambda f: f["opens"],
        "target continues the last session": lambda f: not f["opens"],
    }
    lines = ["| users | n | N@10 All, off | N@10 All, full | full − off | p |", "|---|---|---|---|---|---|"]
    for name, test in groups.items():
        index = [i for i, u in enumerate(users) if test(features[u])]
        if not index:
            lines.append(f"| {name} | 0 | | | | |")
            continue
        x, y = a[index], b[index]
        p = 1.0 if np.array_equal(x, y) or len(index) < 2 else float(stats.ttest_rel(y, x).pvalue)
        lines.append(f"| {name} | {len(index)} | {x.mean():.4f} | {y.mean():.4f} | {y.mean() - x.mean():+.4f} | {p:.3g} |")
    return lines


def constant_times(interaction: Interaction) -> Interaction:
    """The batch with every time (history and request) replaced by one constant."""
    data = dict(interaction.interaction)
    data["timestamp_list"] = torch.zeros_like(data["timestamp_list"])
    data["timestamp"] = torch.zeros_like(data["timestamp"])
    return Interaction(data)


def one_session(interaction: Interaction) -> Interaction:
    """The batch with every event (history and request) in one session, far apart in time
    below the gap (the session signal of ST and SSE removed; times kept)."""
    data = dict(interaction.interaction)
    data["session_id_list"] = torch.ones_like(data["session_id_list"])
    data["session_id"] = torch.ones_like(data["session_id"])
    return Interaction(data)


class Transformed:
    """A test loader whose interactions pass through ``change``."""

    def __init__(self, loader, change):
        self.loader, self.change = loader, change
        self._dataset = loader._dataset

    def __iter__(self):
        for interaction, *rest in self.loader:
            yield (self.change(interaction), *rest)


def tas_analysis(model, test_data, config, dataset) -> dict:
    """What TAS learned: TE's frequencies against their initialisation, the temporal term's
    spread against the content term's per layer, and N@10 with times or sessions removed."""
    init = 10.0 ** -np.linspace(*config["temporal_init_exponents"], model.temporal_dim)
    learned = model.temporal_encoding.weight.detach().double().numpy()
    spreads = []
    interaction = next(iter(test_data))[0]
    with torch.no_grad():
        items, length, times, sessions = model._history(interaction)
        mask = torch.full_like(length, model.mask_token)
        tokens, segments, times, _ = model._layout(items, length, times, sessions, *model._target(interaction, mask))
        hidden = model.dropout(model.LayerNorm(model.item_embedding(tokens) + model.position_embedding(
            torch.arange(tokens.size(1)).unsqueeze(0).expand_as(tokens))
            + (model.segment_embedding(segments) if model.max_session_segments else 0)))
        attention_mask = model.get_attention_mask(tokens, bidirectional=True)
        temporal = model.temporal_encoding(times)
        valid = (tokens > 0).unsqueeze(1) & (tokens > 0).unsqueeze(2)
        for layer in model.trm_encoder.layer:
            att = layer.multi_head_attention
            q = att.transpose_for_scores(att.query(hidden)).permute(0, 2, 1, 3)
            k = att.transpose_for_scores(att.key(hidden)).permute(0, 2, 3, 1)
            content = torch.matmul(q, k)  # [B h L L]
            proj = att.temporal_proj(temporal)
            term = torch.matmul(proj, proj.transpose(1, 2))
            spreads.append({"content_std": float(content[valid.unsqueeze(1).expand_as(content)].std()),
                            "temporal_std": float(term[valid].std())})
            hidden = layer.feed_forward(att(hidden, attention_mask, temporal))
    metrics = {}
    for name, change in (("as trained", None), ("times constant", constant_times), ("one session", one_session)):
        loader = test_data if change is None else Transformed(test_data, change)
        use_gap = model.use_gap
        model.use_gap = use_gap and change is not one_session  # no gap splits either
        metrics[name] = evaluate_protocols(model, loader, config, ["full"], dataset=dataset)["full/ndcg@10"]
        model.use_gap = use_gap
    return {"frequency_init": init.tolist(), "frequency_learned": learned.tolist(),
            "moved_rel": float(np.median(np.abs(learned - init) / init)), "layers": spreads, "ndcg10_all": metrics}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--work", required=True, help="the --work folder of reproduce table2 --keep-checkpoints")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work)
    off_seeds, _ = row_files(work, args.dataset, slug(OFF))
    full_seeds, full_runs = row_files(work, args.dataset, slug(FULL))
    off, full = load_results(off_seeds), load_results(full_seeds)

    tas = []
    for run in full_runs:
        model_file = json.loads(run.read_text()).get("model_file")
        if not model_file or not Path(model_file).is_file():
            raise SystemExit(f"{run}: no checkpoint (run reproduce table2 with --keep-checkpoints)")
        built = from_checkpoint(model_file)
        config, model, dataset, test_data = built.config, built.model, built.dataset, built.test_data
        model.eval()
        tas.append(tas_analysis(model, test_data, config, dataset))
    features = user_features(test_data, config)
    values = np.array([[f["sessions"], f["last_session_len"], f["gap_hours"]] for f in features.values()])
    stats_lines = [
        f"- test users {len(features)}; sessions in the history window (≤ L items) median "
        f"{np.median(values[:, 0]):.0f} (Q1-Q3 {np.percentile(values[:, 0], 25):.0f}-{np.percentile(values[:, 0], 75):.0f}); "
        f"last session before the target median {np.median(values[:, 1]):.0f} items; gap from the last "
        f"history item to the target median {np.median(values[:, 2]):.2f} h; targets opening a new session: "
        f"{sum(f['opens'] for f in features.values())}.",
    ]
    lines = [f"### Why the switches help or not on {args.dataset}", "",
             f"From the runs in `{work}` (the table2 run's checkpoints), test users.", "",
             "Data:", "", *stats_lines, "",
             "Per-user N@10 All (averaged over seeds), full model against switches off:", "",
             *per_user_table(off, full, features), "",
             "What TAS learned (full model, per seed): median relative change of the TE frequencies "
             "from their initialisation; std of the temporal term T'T'^T against the content term "
             "Q K^T per layer (valid pairs of one test batch); test N@10 All as trained, with every "
             "time replaced by one constant (no temporal signal), and with every event in one session "
             "(no ST/SSE signal):", "",
             "| seed | TE frequencies moved | content / temporal std per layer | N@10 All | times constant | one session |",
             "|---|---|---|---|---|---|"]
    for seed, entry in enumerate(tas, start=1):
        layers = ", ".join(f"{s['content_std']:.3f} / {s['temporal_std']:.3f}" for s in entry["layers"])
        m = entry["ndcg10_all"]
        lines.append(f"| {seed} | {entry['moved_rel']:.2f} | {layers} | {m['as trained']:.4f} | "
                     f"{m['times constant']:.4f} | {m['one session']:.4f} |")
    body = "\n".join(lines) + "\n"
    write_atomic(ROOT / "benchmarks" / "results" / f"sessionbert4rec_analysis_{args.dataset}.md", body.replace("### ", "# ", 1))
    update_section(ROOT / "docs" / "benchmarks.md", f"sessionbert4rec_analysis-{args.dataset}", body, title="# Benchmarks")
    result = {"dataset": args.dataset,
              "ndcg10_all_full": [e["ndcg10_all"]["as trained"] for e in tas],
              "ndcg10_all_times_constant": [e["ndcg10_all"]["times constant"] for e in tas],
              "ndcg10_all_one_session": [e["ndcg10_all"]["one session"] for e in tas],
              "te_moved_rel": [round(e["moved_rel"], 3) for e in tas]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

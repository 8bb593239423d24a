"""Paper Figure 2: N@10 of the full model (ST + SSE + TAS) against the number of session
segments m (dT fixed) and against the temporal dimension dT (m fixed), under the three
protocols, mean ± std over seeds; a PNG plus the numbers (Markdown and JSON)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from recbole_session.files import atomic_path, write_atomic
from recbole_session.reproduce.table2 import HEADERS, cost_note, switches

PROTOCOL_NAMES = {"random100": "random-100", "popular100": "popular-100", "full": "all items"}


def grid_rows(segments: list[int], dims: list[int], m: int, dt: int) -> tuple[list, dict]:
    """Rows (label, model, overrides) and the two sweeps, ``{"m": [(value, label)], "dT": ...}``:
    m varies with dT fixed, dT varies with m fixed; a point both sweeps share is one row."""
    rows: dict[str, dict] = {}
    sweeps: dict[str, list[tuple[int, str]]] = {"m": [], "dT": []}
    for axis, values in (("m", segments), ("dT", dims)):
        for value in values:
            mm, dd = (value, dt) if axis == "m" else (m, value)
            label = f"m = {mm}, dT = {dd}"
            rows[label] = switches(1, 1, 1, mm, dd)
            sweeps[axis].append((value, label))
    return [(label, "SessionBERT4Rec", overrides) for label, overrides in rows.items()], sweeps


def series(rows: dict[str, Any], sweep: list[tuple[int, str]], protocol: str) -> tuple[list, list, list]:
    key = f"test/{protocol}/ndcg@10"
    points = sorted((value, rows[label]["mean"][key], rows[label]["std"][key]) for value, label in sweep)
    return [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]


def plot(rows: dict[str, Any], sweeps: dict[str, list], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for r, (axis, name) in enumerate((("m", "max session segments m"), ("dT", "temporal dimension dT"))):
        for c, protocol in enumerate(HEADERS):
            x, y, err = series(rows, sweeps[axis], protocol)
            ax = axes[r][c]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
            ax.set_xticks(x)
            if axis == "dT":
                ax.set_xscale("log", base=2)
                ax.set_xticks(x, [str(v) for v in x])
            ax.set_xlabel(name)
            ax.set_ylabel(f"N@10, {PROTOCOL_NAMES[protocol]}")
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_outputs(out: Path, dataset: str, rows: dict[str, Any], grid: list[tuple], sweeps: dict[str, list],
                  payload: dict[str, Any], command: str, budget: str) -> tuple[Path, Path, Path]:
    png = out / f"figure2_{dataset}.png"
    plot(rows, sweeps, png, f"SessionBERT4Rec (ST + SSE + TAS) on {dataset}, seeds {payload['seeds']}")
    lines = [f"# Figure 2 on {dataset}", "",
             f"Measured {datetime.date.today().isoformat()} by `{command}`: {payload['minutes']:.1f} min "
             f"wall on {payload['machine']}{cost_note(payload)}. Budget: {budget}. Seeds {payload['seeds']}; mean ± sample std.", "",
             f"![figure 2]({png.name})", "",
             "| m | dT | #params | N@10 Ran. | N@10 Pop. | N@10 All | best epoch |", "|---|---|---|---|---|---|---|"]
    for label, _, overrides in grid:
        row = rows[label]
        cells = " | ".join(f"{row['mean'][f'test/{p}/ndcg@10']:.4f} ± {row['std'][f'test/{p}/ndcg@10']:.4f}"
                           for p in HEADERS)
        lines.append(f"| {overrides['max_session_segments']} | {overrides['temporal_dim']} | "
                     f"{row['n_params']:,} | {cells} | {row['best_epoch']:.0f} |")
    md, js = out / f"figure2_{dataset}.md", out / f"figure2_{dataset}.json"
    write_atomic(md, "\n".join(lines) + "\n")
    write_atomic(js, json.dumps(payload, indent=1, default=str))
    return png, md, js

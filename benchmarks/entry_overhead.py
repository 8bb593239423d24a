"""Our entry point against RecBole's own ``run_recbole`` on the same session-aware ml-100k
data: one epoch of a RecBole model, whole process wall time, repetitions alternated.

    python benchmarks/entry_overhead.py [--model BERT4Rec] [--reps 3] [--epochs 1]

The last line is a JSON object; ``ratio`` = ours / RecBole's (median of the repetitions).
RecBole's run keeps the anomaly detection that its SINE import switches on; ours switches it off
(recbole_session/compat.py), which is most of the difference.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# RecBole's run gets the settings our property files give (same data, same evaluation)
SHARED = (
    "--load_col=\"{'inter': ['user_id', 'item_id', 'timestamp', 'session_id', 'dwell']}\" "
    "--normalize_all=False --train_neg_sample_args=None --show_progress=False "
    "--eval_args=\"{'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'group_by': 'user', 'mode': 'full'}\" "
    "--metrics=\"['Recall','MRR','NDCG','Hit']\" --topk=\"[10,20]\" --valid_metric=NDCG@10"
)

# saved=False: unpatched RecBole 1.2.1 cannot load its own best checkpoint on torch >= 2.6
# ("Unsupported operand 149"), so it runs without saving; ours saves and reloads (more work)
RECBOLE = "from recbole.quick_start import run_recbole; run_recbole(model=sys.argv[1], dataset=sys.argv[2], saved=False)"


def timed(cmd: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="BERT4Rec")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from recbole_session.convert import convert

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        convert("ml-100k", out=work / "ours")
        # the same atomic file under another name: RecBole forces "ml-100k" onto its bundled copy
        theirs = work / "theirs" / "mlsession"
        theirs.mkdir(parents=True)
        shutil.copy(work / "ours" / "ml-100k" / "ml-100k.inter", theirs / "mlsession.inter")
        common = f"--epochs={args.epochs} {SHARED}"
        ours = (f"{sys.executable} {REPO / 'run_recbole_session.py'} --model={args.model} --dataset=ml-100k "
                f"--data_path={work / 'ours'} {common}")
        recbole = (f"{sys.executable} -c \"import sys; {RECBOLE}\" {args.model} mlsession "
                   f"--data_path={work / 'theirs'} {common}")
        times: dict[str, list[float]] = {"ours": [], "recbole": []}
        for _ in range(args.reps):
            times["recbole"].append(timed(recbole, work))
            times["ours"].append(timed(ours, work))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.model}, {args.epochs} epoch(s), whole process, median of {args.reps}: "
          f"ours {med['ours']:.1f} s, RecBole run_recbole {med['recbole']:.1f} s")
    print(json.dumps({"model": args.model, "ours_s": round(med["ours"], 2), "recbole_s": round(med["recbole"], 2),
                      "ratio": round(med["ours"] / med["recbole"], 3)}))


if __name__ == "__main__":
    main()

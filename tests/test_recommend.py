"""Recommendations for a request (user, time): python -m recbole_session.recommend and Recommender.

Every model is trained once per session (1 epoch, tiny sizes, conftest's ``checkpoints``) on the
session-aware ml-100k. The reference
scores come from RecBole's own test and valid loaders (the batch RecBole builds for the test or
valid row), fed to the model's own full_sort_predict.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.dataset import Dataset

from recbole_session.cli import UsageError
from recbole_session.evaluate import load_checkpoint
from recbole_session.literals import short
from recbole_session.recommend import (
    MAX_INPUT_BYTES,
    Recommender,
    RecommendError,
    RecommendWarning,
    has_repeats,
    main,
)
from tests.bad_input import BadInput, check, drop_permission_override
from tests.tiny_models import MAIN_MODELS, MODELS

REPO = Path(__file__).resolve().parent.parent
_LOADED: dict[tuple[str, int], Recommender] = {}
_LOADERS: dict[str, tuple] = {}


def recommender(checkpoints, name: str, holdout: int = 0) -> Recommender:
    if (name, holdout) not in _LOADED:
        _LOADED[name, holdout] = Recommender.from_checkpoint(checkpoints[name], holdout=holdout)
    return _LOADED[name, holdout]


def cli(argv: list[str], tmp_path: Path, name: str = "out.csv") -> pd.DataFrame:
    """The command's CSV; scores as float32, the model's precision, which the CSV keeps exactly."""
    out = tmp_path / name
    assert main([*argv, "--out", str(out)]) == 0
    return pd.read_csv(out, dtype={"user": str, "item": str, "score": np.float32})


def reference(model, rec: Recommender, loader) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """(user tokens, full_sort_predict scores, absolute times) of RecBole's own loader rows."""
    users, scores, times = [], [], []
    model.eval()
    for batch in loader:
        row = batch[0]
        with torch.no_grad():
            scores.append(model.full_sort_predict(row).view(len(row), -1))
        users.append(rec.user_tokens[row[rec.fields.user].numpy()])
        times.append(rec.time_axis.origin + row[rec.fields.time].double().numpy())
    return np.concatenate(users), torch.cat(scores), np.concatenate(times)


# ------------------------------------------------------------------------------ the output
@pytest.mark.parametrize("model", MAIN_MODELS)
def test_output_ids_exist_in_the_dataset_files(model, checkpoints, inter, tmp_path):
    users = sorted(set(inter["user_id"]))[-3:]
    frame = cli([checkpoints[model], *sum((["--user", u] for u in users), []), "--topk", "7"], tmp_path)
    assert list(frame.columns) == ["user", "rank", "item", "score"]
    assert frame["user"].tolist() == [u for u in users for _ in range(7)]
    assert frame["rank"].tolist() == list(range(1, 8)) * 3
    assert set(frame["item"]) <= set(inter["item_id"]) and set(frame["user"]) <= set(inter["user_id"])
    for _, rows in frame.groupby("user"):  # ranked by score
        assert (np.diff(rows["score"].to_numpy()) <= 0).all()
    # ml-100k has no repeats, so a user's own items are left out by default
    seen = set(zip(inter["user_id"], inter["item_id"]))
    assert not any((u, i) in seen for u, i in zip(frame["user"], frame["item"]))


@pytest.mark.parametrize("model", MAIN_MODELS)
def test_api_and_command_line_agree(model, checkpoints, inter, tmp_path):
    rec = recommender(checkpoints, model)
    users, at = sorted(set(inter["user_id"]))[:2], "+864000"  # a new session for both
    frame = cli([checkpoints[model], "--user", users[0], "--user", users[1], "--at", at, "--topk", "10"], tmp_path)
    api = rec.recommend_many([(u, at) for u in users], k=10).astype({"score": np.float32})
    assert frame.to_dict("list") == api[["user", "rank", "item", "score"]].to_dict("list")
    assert api["new_session"].all()
    for user in users:  # one request alone: another batch shape, the same ranking
        rows = frame[frame["user"] == user]
        alone = rec.recommend(user, at=at, k=10)
        assert rows["item"].tolist() == [i for i, _ in alone]
        assert rows["score"].tolist() == pytest.approx([s for _, s in alone], rel=1e-5)


def test_the_command_runs_as_a_module(checkpoints, tmp_path):
    out = subprocess.run([sys.executable, "-m", "recbole_session.recommend", checkpoints["SessionBERT4Rec"],
                          "--user", "2", "--topk", "3"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    expected = recommender(checkpoints, "SessionBERT4Rec").recommend("2", k=3)
    assert lines == ["user,rank,item,score"] + [f"2,{r},{i},{str(np.float32(s))}" for r, (i, s) in enumerate(expected, 1)]


# ------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("split", ["test", "valid"])
def test_scores_equal_full_sort_predict_of_recboles_loader_rows(model, split, checkpoints):
    """Leaving out the newest event (test) or two (valid), a request at the left-out event's time
    gets exactly the scores RecBole's loader row gets from full_sort_predict. On valid, 18 of the
    173 requests open a new session, decided by the gap alone (the loader row has the data's
    session id)."""
    holdout = 1 if split == "test" else 2
    rec = recommender(checkpoints, model, holdout)
    if model not in _LOADERS:  # RecBole's own loaders and a second copy of the model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            _LOADERS[model] = load_checkpoint(checkpoints[model])
    _, model_obj, _, valid, test = _LOADERS[model]
    users, scores, times = reference(model_obj, rec, test if split == "test" else valid)
    k = 50
    frame = rec.recommend_many(list(zip(users, times)), k=k, exclude_seen=False)
    scores[:, 0] = -torch.inf
    top = torch.topk(scores, k, dim=1)
    assert frame["item"].tolist() == rec.item_tokens[top.indices.numpy()].ravel().tolist()
    assert frame["score"].tolist() == top.values.double().numpy().ravel().tolist()
    opened = frame.groupby("user", sort=False)["new_session"].first().to_numpy()
    assert opened.sum() == (18 if split == "valid" else 0)


def test_fresh_events_extend_the_history_as_the_dataset_would(checkpoints, inter):
    """The two newest events of every user, given as fresh events to a history without them, give
    the same scores as the whole history: session ids (new sessions by the gap) and the dwell of
    the event before each fresh one are rebuilt as the converter builds them."""
    for model in ("SessionBERT4Rec", "ASARS"):
        full, cut = recommender(checkpoints, model), recommender(checkpoints, model, holdout=2)
        newest = inter.groupby("user_id", sort=False).tail(2)
        origin = full.time_axis.origin
        events = pd.DataFrame({"user": newest["user_id"], "item": newest["item_id"],
                               "time": newest["timestamp"] + origin})
        users = sorted(set(inter["user_id"]))
        for at in ("+60", "+864000"):
            want = full.recommend_many([(u, at) for u in users], k=20)
            got = cut.recommend_many([(u, at) for u in users], k=20, events=events)
            pd.testing.assert_frame_equal(got, want)


# ------------------------------------------------------------------------------ sessions and times
def test_sessionbert4rec_new_session_comes_only_from_session_token_segment_and_time(checkpoints, tmp_path):
    rec = recommender(checkpoints, "SessionBERT4Rec")
    model = rec.model
    assert model.use_session_token and model.max_session_segments and model.temporal_dim
    n = rec.n_items - 1
    near = cli([checkpoints["SessionBERT4Rec"], "--user", "2", "--at", "+60", "--topk", str(n)], tmp_path, "a.csv")
    far = cli([checkpoints["SessionBERT4Rec"], "--user", "2", "--at", "+864000", "--topk", str(n)], tmp_path, "b.csv")
    assert near["item"].tolist() != far["item"].tolist()

    # the two batches differ only in the request's own time and session id
    user = np.array([rec.user_ids["2"]])
    last = rec.history.last_time[user]
    a = rec.batch(rec.history, user, last + 60, np.array([False]))
    b = rec.batch(rec.history, user, last + 864000, np.array([True]))
    differ = {name for name in a.interaction if not torch.equal(a[name], b[name])}
    # (and the last event's dwell: the gap to the request inside a session, as the converter
    # writes it; SessionBERT4Rec does not read dwell)
    assert differ == {rec.fields.time, rec.fields.session, rec.fields.dwell + rec.fields.suffix}
    # ... which the model turns into a session token before the MASK and an advanced segment
    tokens = {}
    for name, batch in (("near", a), ("far", b)):
        items, length, times, sessions = model._history(batch)
        mask = torch.full_like(length, model.mask_token)
        tok, seg, _, end = model._layout(items, length, times, sessions, *model._target(batch, mask))
        tokens[name] = (tok[0, : end + 1].tolist(), seg[0, : end + 1].tolist())
    (near_tok, near_seg), (far_tok, far_seg) = tokens["near"], tokens["far"]
    m = model.max_session_segments
    assert near_tok[-1] == far_tok[-1] == model.mask_token and near_tok[-2] != model.session_token_id
    assert far_tok[-2] == model.session_token_id and far_tok[:-2] == near_tok[1:-1]
    assert near_seg[-2:] == [m, m] and far_seg[-3:] == [m - 1, m, m]

    # with the three switches off the same two requests rank identically
    off = recommender(checkpoints, "SessionBERT4Rec-off")
    ranked = [[i for i, _ in off.recommend("2", at=at, k=n)] for at in ("+60", "+864000")]
    assert ranked[0] == ranked[1]


def test_times_convert_back_and_forth_exactly(checkpoints, inter):
    rec = recommender(checkpoints, "SessionBERT4Rec")
    user = "2"
    raw_last = rec.time_axis.origin + inter.loc[inter["user_id"] == user, "timestamp"].max()
    assert float(raw_last).is_integer()  # ml-100k's raw unix seconds
    for seconds, opens in ((60, False), (86400, False), (86401, True)):  # the gap is strict
        relative = rec.recommend_many([(user, f"+{seconds}")], k=5)
        absolute = rec.recommend_many([(user, raw_last + seconds)], k=5)
        pd.testing.assert_frame_equal(relative, absolute)
        assert (absolute["time"] == raw_last + seconds).all() and (absolute["new_session"] == opens).all()
    assert rec.recommend(user) == rec.recommend(user, at="+1") == rec.recommend(user, at=raw_last + 1)


def test_history_is_read_once(checkpoints, atomic_root, tmp_path, monkeypatch):
    """Loading reads the atomic file once; then no request reads anything (the file is gone)."""
    data = tmp_path / "data"
    shutil.copytree(atomic_root / "ml-100k", data / "ml-100k")
    reads = []
    original = Dataset._load_feat

    def counting(self, filepath, source):
        reads.append(Path(filepath).name)
        return original(self, filepath, source)

    monkeypatch.setattr(Dataset, "_load_feat", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rec = Recommender.from_checkpoint(checkpoints["SessionBERT4Rec"], data_path=str(data))
    assert reads == ["ml-100k.inter"]
    (data / "ml-100k" / "ml-100k.inter").unlink()
    users = rec.user_tokens[1:].tolist()  # 0 is [PAD]
    frame = rec.recommend_many(users, k=5)
    for user in users[:20]:
        rec.recommend(user, at="+3600", k=5)
    assert reads == ["ml-100k.inter"] and frame["user"].nunique() == len(users) == 173


# ------------------------------------------------------------------------------ requests, events
def test_requests_file_answers_unknown_users_with_popular_items(checkpoints, inter, tmp_path, capsys):
    requests = tmp_path / "requests.csv"
    requests.write_text("user,time\n2,+60\nnobody,\n5,\n2,+864000\n")
    frame = cli([checkpoints["SessionBERT4Rec"], "--requests", str(requests), "--topk", "5"], tmp_path)
    err = capsys.readouterr().err
    assert "line 3" in err and "unknown user 'nobody'" in err and err.count("\n") == 1
    assert list(frame.columns) == ["user", "rank", "item", "score", "time", "popular", "new_user", "mean_user"]
    assert frame["user"].tolist() == [u for u in ("2", "nobody", "5", "2") for _ in range(5)]
    popular = frame[frame["popular"] == 1]
    assert set(popular["user"]) == {"nobody"} and popular["time"].isna().all()
    counts = inter["item_id"].value_counts()
    assert [counts[i] for i in popular["item"]] == popular["score"].tolist() == counts.iloc[:5].tolist()
    last = inter.groupby("user_id")["timestamp"].max()
    origin = recommender(checkpoints, "SessionBERT4Rec").time_axis.origin
    assert frame.loc[frame["user"] == "5", "time"].eq(origin + last["5"] + 1).all()  # empty time: +1


def test_events_file_unknown_items_are_skipped_with_a_warning(checkpoints, inter, tmp_path, capsys):
    rec = recommender(checkpoints, "SessionBERT4Rec")
    raw_last = rec.time_axis.origin + inter.loc[inter["user_id"] == "2", "timestamp"].max()
    events = tmp_path / "events.csv"
    events.write_text(f"user,item,time\n2,50,{raw_last + 30}\n2,no-such-item,{raw_last + 40}\n")
    frame = cli([checkpoints["SessionBERT4Rec"], "--user", "2", "--events", str(events), "--at", "+60"], tmp_path)
    err = capsys.readouterr().err
    assert "no-such-item" in err and "line 3" in err and err.count("\n") == 1
    with_event = rec.recommend("2", at="+60", events=[("50", raw_last + 30)])
    assert list(zip(frame["item"], frame["score"])) == with_event != rec.recommend("2", at="+90")
    assert "50" not in frame["item"].tolist()  # the fresh item is now seen


def test_exclude_seen_default_follows_repeats_in_the_data(checkpoints, inter):
    assert not has_repeats(np.array([1, 1, 2]), np.array([5, 6, 5]), 10)
    assert has_repeats(np.array([1, 1, 2]), np.array([5, 5, 6]), 10)
    rec = recommender(checkpoints, "SASRec")
    assert not rec.has_repeats and rec.exclude_seen_default
    seen = set(inter.loc[inter["user_id"] == "2", "item_id"])
    kept = [i for i, _ in rec.recommend("2", k=100, exclude_seen=False)]
    excluded = [i for i, _ in rec.recommend("2", k=100)]
    assert seen & set(kept) and not seen & set(excluded)
    assert [i for i in kept if i not in seen] == excluded[: len([i for i in kept if i not in seen])]


def test_api_refuses_unknown_users_and_bad_times(checkpoints):
    rec = recommender(checkpoints, "SASRec")
    with pytest.raises(RecommendError, match="unknown user 'nobody'"):
        rec.recommend("nobody")
    with pytest.raises(RecommendError, match="not a time"):
        rec.recommend("2", at="soon")
    with pytest.raises(RecommendError, match="before the last known event of user '2'"):
        rec.recommend("2", at=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = rec.recommend_many(["nobody"], k=3)
    assert frame["popular"].all() and [w.category for w in caught] == [RecommendWarning]


# ------------------------------------------------------------------------------ bad input
def _write(name: str, text: str | bytes):
    def setup(folder: Path) -> None:
        if isinstance(text, bytes):
            (folder / name).write_bytes(text)
        else:
            (folder / name).write_text(text)
    return setup


def _oversized(folder: Path) -> None:
    """A requests file one byte past the limit, sparse: it takes no room on the disk."""
    with open(folder / "requests.csv", "wb") as handle:
        handle.write(b"user,time\n2,+5\n")
        handle.truncate(MAX_INPUT_BYTES + 1)


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "requests.csv")


def _locked(folder: Path) -> None:
    (folder / "locked").mkdir()
    (folder / "locked").chmod(0o555)


def without_permission_override(argv: list[str]) -> int:
    """The command's main in a process that file permissions apply to (root's override dropped)."""
    drop_permission_override()
    return main(argv)


def _garbage(folder: Path) -> None:
    (folder / "bad.pth").write_bytes(b"not a checkpoint at all")


CMD = "recbole_session.recommend:main"
LONG_USER = "x" * 5000


def _events_case(what: str, text: str | bytes, message: str) -> BadInput:
    return BadInput("recommend", what, CMD, ("{ckpt}", "--user", "2", "--events", "{tmp}/events.csv"), message,
                    setup=_write("events.csv", text))


CASES = [
    BadInput("recommend", "a checkpoint that does not exist", CMD, ("{tmp}/nope.pth", "--user", "2"),
             "nope.pth: no such checkpoint"),
    BadInput("recommend", "a file that is not a checkpoint", CMD, ("{tmp}/bad.pth", "--user", "2"),
             "bad.pth: not a readable checkpoint", setup=_garbage),
    BadInput("recommend", "an unknown user", CMD, ("{ckpt}", "--user", "nobody", "--out", "{tmp}/out.csv"),
             "--user nobody: unknown user (not in dataset 'ml-100k'; give its events with --events)"),
    BadInput("recommend", "a malformed --at", CMD, ("{ckpt}", "--user", "2", "--at", "soon"),
             "--at: 'soon' is not a time"),
    BadInput("recommend", "--at with a sign after +", CMD, ("{ckpt}", "--user", "2", "--at", "+-5"),
             "--at: '+-5' is not a time"),
    BadInput("recommend", "--at before the user's last event", CMD, ("{ckpt}", "--user", "2", "--at", "0"),
             "--user 2: time 0 is before the last known event of user '2'"),
    _events_case("events with an unknown column", "user,item,time,rating\n2,50,900000000,5\n",
                 "events.csv: unknown column 'rating'; expected user,item,time"),
    _events_case("events without a time column", "user,item\n2,50\n", "events.csv: missing column 'time'"),
    _events_case("an event time that is not a number", "user,item,time\n2,50,900000000\n2,51,noon\n",
                 "events.csv line 3 field 'time': 'noon' is not a number"),
    _events_case("an event before the user's last event", "user,item,time\n2,50,874729682\n",
                 "events.csv line 2: time is before the user's last known event"),
    BadInput("recommend", "a request time that is not a time", CMD,
             ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv line 3 field 'time': 'later' is not a time",
             setup=_write("requests.csv", "user,time\n2,+5\n5,later\n")),
    BadInput("recommend", "a requests file that does not exist", CMD, ("{ckpt}", "--requests", "{tmp}/r.csv"),
             "r.csv: no such file"),
    BadInput("recommend", "neither --user nor --requests", CMD, ("{ckpt}",), "give --user U"),
    BadInput("recommend", "--session with --user", CMD, ("{ckpt}", "--user", "2", "--session", "50"),
             "give --user U (one or more), --requests FILE or --session ITEMS"),
    BadInput("recommend", "an empty --session", CMD, ("{tmp}/nope.pth", "--session", " , "),
             "--session ' , ': no items; expected items, comma-separated"),
    BadInput("recommend", "--session with --events", CMD, ("{ckpt}", "--session", "50", "--events", "{tmp}/e.csv"),
             "--session carries its own items: --events is for --user and --requests"),
    BadInput("recommend", "--session on a dataset with times", CMD, ("{ckpt}", "--session", "50,172"),
             "--session: dataset 'ml-100k' has times: give the session as --events rows of a new user id"),
    BadInput("recommend", "--topk 0", CMD, ("{ckpt}", "--user", "2", "--topk", "0"),
             "--topk must be a positive integer, got 0"),
    BadInput("recommend", "--exclude-seen with --keep-seen", CMD,
             ("{ckpt}", "--user", "2", "--exclude-seen", "--keep-seen"), "not allowed with argument"),
    # the checkpoint and the options
    BadInput("recommend", "a folder as the checkpoint", CMD, ("{tmp}", "--user", "2"), "is a folder, not a checkpoint"),
    BadInput("recommend", "--topk x", CMD, ("{ckpt}", "--user", "2", "--topk", "x"), "argument --topk: invalid int value"),
    BadInput("recommend", "--batch-size 0", CMD, ("{ckpt}", "--user", "2", "--batch-size", "0"),
             "--batch-size must be a positive integer, got 0"),
    BadInput("recommend", "--at past what the dataset's times hold (float32)", CMD, ("{ckpt}", "--user", "2", "--at", "1e39"),
             "--user 2: time 1e+39 is beyond the dataset's times (float32, at most 3.4e+38)"),
    BadInput("recommend", "--at +SECONDS past what the dataset's times hold", CMD,
             ("{ckpt}", "--user", "2", "--at", "+1e39"), "time 1e+39 is beyond the dataset's times"),
    BadInput("recommend", "a 5000-character unknown --user (shown cut)", CMD, ("{ckpt}", "--user", LONG_USER),
             f"--user {short(LONG_USER)}: unknown user (not in dataset 'ml-100k'; give its events with --events)"),
    BadInput("recommend", "--data_path that is a file", CMD, ("{ckpt}", "--user", "2", "--data_path", "{tmp}/file"),
             "give --data_path DIR", setup=_write("file", "x")),
    # --out: checked before the checkpoint is loaded
    BadInput("recommend", "--out onto a folder", CMD, ("{ckpt}", "--user", "2", "--out", "{tmp}"),
             "is a folder; give a file name"),
    BadInput("recommend", "--out in a folder it may not write", "tests.test_recommend:without_permission_override",
             ("{ckpt}", "--user", "2", "--out", "{tmp}/locked/top.csv"),
             "locked: permission denied (choose a writable folder)", setup=_locked, subprocess=True),
    BadInput("recommend", "--out under a file", CMD, ("{ckpt}", "--user", "2", "--out", "{tmp}/file/top.csv"),
             "file is not a folder", setup=_write("file", "x")),
    BadInput("recommend", "--out with a 250-character name", CMD, ("{ckpt}", "--user", "2", "--out", "{tmp}/" + "y" * 250),
             "a name too long (255 bytes at most"),
    BadInput("recommend", "--out onto the checkpoint", CMD, ("{ckpt}", "--user", "2", "--out", "{ckpt}"),
             "is the checkpoint file; choose another output name"),
    BadInput("recommend", "--out onto the --requests file", CMD,
             ("{ckpt}", "--requests", "{tmp}/requests.csv", "--out", "{tmp}/requests.csv"),
             "requests.csv: is --requests file; choose another output name",
             setup=_write("requests.csv", "user,time\n2,+5\n")),
    # the requests and events files
    BadInput("recommend", "a requests file that is not UTF-8", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv line 3: not UTF-8 text (byte 0xe9 at position 2)",
             setup=_write("requests.csv", "user,time\n2,+5\n5\xe9,+5\n".encode("latin-1"))),
    BadInput("recommend", "a requests file past the size limit (100 MiB)", CMD,
             ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             f"requests.csv: {MAX_INPUT_BYTES + 1} bytes, more than the limit of {MAX_INPUT_BYTES} (100 MiB)",
             setup=_oversized),
    BadInput("recommend", "a requests file that is a folder", CMD, ("{ckpt}", "--requests", "{tmp}"),
             "is a folder, not a CSV file"),
    BadInput("recommend", "a requests file that is a pipe", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv: not a regular file", setup=_fifo),
    BadInput("recommend", "an empty requests file", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv: empty file; expected the header user,time", setup=_write("requests.csv", "")),
    BadInput("recommend", "a requests file with only its header", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv: no requests, only the header", setup=_write("requests.csv", "user,time\n")),
    BadInput("recommend", "a request row with an extra field", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv line 3: 3 fields, expected 2 (user,time)",
             setup=_write("requests.csv", "user,time\n2,+5\n5,+5,x\n")),
    BadInput("recommend", "a request with an empty user", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv line 2 field 'user': empty", setup=_write("requests.csv", "user,time\n,+5\n")),
    BadInput("recommend", "a requests file with a column twice", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv: column 'user' given twice", setup=_write("requests.csv", "user,user\n2,5\n")),
    BadInput("recommend", "a request field past csv's field limit", CMD, ("{ckpt}", "--requests", "{tmp}/requests.csv"),
             "requests.csv line 2: not a CSV row (field larger than field limit",
             setup=_write("requests.csv", "user,time\n2," + "9" * 200_000 + "\n")),
    BadInput("recommend", "a request time past what the dataset's times hold", CMD,
             ("{ckpt}", "--requests", "{tmp}/requests.csv"), "requests.csv line 2: time 1e+39 is beyond the dataset's times",
             setup=_write("requests.csv", "user,time\n2,1e39\n")),
    _events_case("an events file that is not UTF-8", b"user,item,time\n2,50\xff,900000000\n",
                 "events.csv line 2: not UTF-8 text (byte 0xff at position 5)"),
    BadInput("recommend", "an events file that is a folder", CMD, ("{ckpt}", "--user", "2", "--events", "{tmp}"),
             "is a folder, not a CSV file"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(case, checkpoints, tmp_path):
    argv = tuple(a.replace("{ckpt}", checkpoints["SASRec"]) for a in case.argv)
    before = Path(checkpoints["SASRec"]).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        outcome = check(dataclasses.replace(case, argv=argv), tmp_path)
    assert len(outcome.stderr) < 1000, outcome.stderr  # no value is printed at unbounded length
    assert Path(checkpoints["SASRec"]).read_bytes() == before  # an --out onto it wrote nothing


def test_the_table_lists_each_case_once():
    assert len({c.id for c in CASES}) == len(CASES) >= 40


def test_a_reader_that_stops_early_gets_no_traceback(checkpoints, tmp_path):
    """``recommend ... | head -1``: the pipe closes while the CSV is written (more than a pipe's
    buffer): exit status 141 as for SIGPIPE, and no traceback."""
    known = recommender(checkpoints, "SASRec").user_tokens[1:21]  # 0 is [PAD]
    users = [a for u in known for a in ("--user", str(u))]
    proc = subprocess.Popen([sys.executable, "-m", "recbole_session.recommend", checkpoints["SASRec"], *users,
                             "--topk", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline() == b"user,rank,item,score\n", proc.stderr.read().decode()[-2000:]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141 and "Traceback" not in err and "Exception ignored" not in err, err


def test_out_into_missing_folders_makes_them(checkpoints, tmp_path):
    frame = cli([checkpoints["SASRec"], "--user", "2", "--topk", "3"], tmp_path, "new/deeper/top.csv")
    assert frame["item"].size == 3


def test_a_spreadsheets_byte_order_mark_is_read(checkpoints, tmp_path):
    requests = tmp_path / "requests.csv"
    requests.write_bytes("user,time\n2,+60\n".encode("utf-8-sig"))
    frame = cli([checkpoints["SASRec"], "--requests", str(requests), "--topk", "3"], tmp_path)
    assert frame["user"].tolist() == ["2"] * 3


# ------------------------------------------------------------------------------ the Python API's arguments
def test_api_refuses_wrong_argument_types_in_one_line(checkpoints):
    """A wrong type is a UsageError naming the argument and what it expects, not a TypeError from
    deep inside pandas or torch (or a string read as one user per character)."""
    rec = recommender(checkpoints, "SASRec")
    calls = [
        (lambda: Recommender("config", rec.model, rec.dataset), "Recommender: config expects a RecBole Config, got str"),
        (lambda: Recommender(rec.config, "model", rec.dataset), "Recommender: model expects a RecBole model"),
        (lambda: Recommender(rec.config, rec.model, [1, 2]), "Recommender: dataset expects the RecBole Dataset"),
        (lambda: Recommender(rec.config, rec.model, rec.dataset, holdout=-1),
         "Recommender: holdout expects an integer >= 0, got -1"),
        (lambda: Recommender.from_checkpoint(123), "from_checkpoint: path expects a file path"),
        (lambda: Recommender.from_checkpoint(checkpoints["SASRec"], data_path=5),
         "from_checkpoint: data_path expects a folder path"),
        (lambda: Recommender.from_checkpoint(checkpoints["SASRec"], holdout="1"), "holdout expects an integer >= 0"),
        (lambda: rec.recommend(["2"]), "recommend: user expects an original user id \\(str or int\\) or None, got list"),
        (lambda: rec.recommend(True), "recommend: user expects an original user id"),
        (lambda: rec.recommend("2", at=[60]), "recommend: at expects a time"),
        (lambda: rec.recommend("2", k="10"), "k \\(--topk\\) must be a positive integer, got '10'"),
        (lambda: rec.recommend("2", exclude_seen="no"), "exclude_seen expects True, False or None"),
        (lambda: rec.recommend("2", events=5), "events expects a CSV path, a DataFrame or a list"),
        (lambda: rec.recommend("2", events=[("50",)]), "events\\[0\\] expects \\(user, item, time\\) or \\(item, time\\)"),
        (lambda: rec.recommend_many("196"), "requests expects a DataFrame or a list of users .* got str"),
        (lambda: rec.recommend_many(5), "requests expects a DataFrame .* got int"),
        (lambda: rec.recommend_many([("2", "+5", "x")]), "requests\\[0\\] expects a user \\(str or int\\) or a \\(user, time\\)"),
        (lambda: rec.recommend_many(["2"], batch_size=-1), "batch_size expects an integer >= 1, got -1"),
        (lambda: rec.recommend_many(["2"], batch_size=2.5), "batch_size expects an integer >= 1, got 2.5"),
        (lambda: rec.known_user({"2"}), "known_user: user expects an original user id"),
    ]
    for call, message in calls:
        with pytest.raises(UsageError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert issubclass(RecommendError, UsageError)

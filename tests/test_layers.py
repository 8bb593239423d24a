"""The tensor idioms the models share (recbole_session.model.layers), on exact tiny inputs."""

from __future__ import annotations

import torch

from recbole_session.model.layers import session_starts, valid_positions


def test_valid_positions_marks_the_first_length_positions():
    assert valid_positions(torch.tensor([0, 2, 4]), 4).tolist() == [
        [False, False, False, False],
        [True, True, False, False],
        [True, True, True, True],
    ]


def test_session_starts_from_ids_gaps_and_padding():
    valid = valid_positions(torch.tensor([4, 3]), 4)
    sessions = torch.tensor([[7, 7, 8, 8], [1, 2, 2, 0]])
    times = torch.tensor([[0, 10, 20, 500], [0, 5, 600, 0]])
    # ids only: position 0 always, then each change of id; the padding's id change does not count
    assert session_starts(valid, sessions).tolist() == [[True, False, True, False], [True, True, False, False]]
    # a gap above 100 also opens one
    assert session_starts(valid, sessions, times, 100).tolist() == [
        [True, False, True, True],
        [True, True, True, False],
    ]
    # neither: only the window's first event
    assert session_starts(valid).tolist() == [[True, False, False, False], [True, False, False, False]]

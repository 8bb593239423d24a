"""Tensor idioms shared by the package's models: which positions of RecBole's right-padded
item lists hold events, and where a session begins. One definition, so that the models agree
on what "a new session" is."""

from __future__ import annotations

import torch


def valid_positions(length: torch.Tensor, width: int) -> torch.Tensor:
    """``(B, width)`` bool, True at the first ``length[b]`` positions of row ``b`` (RecBole pads
    item lists on the right)."""
    return torch.arange(width, device=length.device).unsqueeze(0) < length.unsqueeze(1)


def session_starts(
    valid: torch.Tensor,
    sessions: torch.Tensor | None = None,
    times: torch.Tensor | None = None,
    gap: float | None = None,
) -> torch.Tensor:
    """``(B, L)`` bool, True where a session begins among the ``valid`` positions.

    Position 0 always begins one (a window may cut a session; its first event still opens
    what the model sees). A later position begins one where its session id differs from the
    previous position's (``sessions``) or, with ``gap``, where more than ``gap`` time units
    passed since the previous event (``times``). Padding never begins a session.
    """
    starts = torch.zeros_like(valid)
    starts[:, 0] = True
    changed = torch.zeros_like(valid[:, 1:])
    if sessions is not None:
        changed = changed | (sessions[:, 1:] != sessions[:, :-1])
    if gap is not None and times is not None:
        changed = changed | ((times[:, 1:] - times[:, :-1]) > gap)
    starts[:, 1:] = changed
    return starts & valid

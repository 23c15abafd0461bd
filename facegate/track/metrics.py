"""Counting what "stable identities" means: track-id switches and name switches.

Two different failures look alike in a video and are counted apart:

* a *track-id switch* (CLEAR-MOT IDSW): the same true object is followed by a different
  track id than before, because the tracker lost it or swapped it with a neighbour;
* a *name switch*: one track's decided name changes from one enrolled person to another
  (directly or by way of "unknown"). A track going between a name and "unknown" is a
  *revision*, reported separately; the first decision is neither.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from facegate.track.tracker import assign, iou_matrix

UNKNOWN = "unknown"


def match_frame(gt: Mapping[Hashable, np.ndarray], tracks: Mapping[int, np.ndarray], min_iou: float = 0.3) -> dict[Hashable, int]:
    """Ground-truth object -> track id for one frame, by best IoU one-to-one matching."""
    g_ids, t_ids = list(gt), list(tracks)
    if not g_ids or not t_ids:
        return {}
    sim = iou_matrix(np.stack([gt[g] for g in g_ids]), np.stack([tracks[t] for t in t_ids]))
    return {g_ids[r]: t_ids[c] for r, c in assign(sim, min_iou)}


def id_switches(frames: Iterable[Mapping[Hashable, int]]) -> int:
    """CLEAR-MOT identity switches over a sequence of per-frame {object: track id} matches.

    An object's switch is counted when it is matched to a track id other than the one it
    was last matched to; frames where it is unmatched do not reset that memory.
    """
    last: dict[Hashable, int] = {}
    switches = 0
    for matches in frames:
        for obj, tid in matches.items():
            if obj in last and last[obj] != tid:
                switches += 1
            last[obj] = tid
    return switches


def name_changes(labels: Sequence[str | None]) -> tuple[int, int]:
    """(name switches, revisions) in one track's sequence of decided labels (None = undecided).

    A switch is person A -> person B, also by way of "unknown" (A -> unknown -> B); a
    revision is any other change (a name <-> "unknown"). The first decision is neither.
    """
    switches = revisions = 0
    prev: str | None = None
    last_name: str | None = None
    for lab in labels:
        if lab is None or lab == prev:
            continue
        if lab != UNKNOWN and last_name is not None and lab != last_name:
            switches += 1
        elif prev is not None:
            revisions += 1
        if lab != UNKNOWN:
            last_name = lab
        prev = lab
    return switches, revisions


def frame_ranges(frames: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted frame numbers collapsed to inclusive (first, last) runs: [0,1,2,5] -> [(0,2),(5,5)]."""
    out: list[tuple[int, int]] = []
    for f in sorted(set(frames)):
        if out and f == out[-1][1] + 1:
            out[-1] = (out[-1][0], f)
        else:
            out.append((f, f))
    return out

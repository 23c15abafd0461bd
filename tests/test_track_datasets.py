"""``watch`` on the shared stage clip with the real models (skipped without ../shared/datasets).

The clip (640x360, 275 frames) has three cuts: a wide shot (Lin-Manuel Miranda on stage, Alex
Lacamoire at the piano, his face about 25 px), a profile close-up of Alex, a close-up of
Lin-Manuel, and the audience. What must hold at the default FAR (1e-3): Lin-Manuel is named in
both shots he is in, no track changes name, nobody in the audience is named, the shot cuts end
tracks, and the event log is well-formed. Alex is only seen in full profile or 27-29 px wide,
where his frames score no higher against his photo than audience faces do: he cannot be named
at this FAR (see the video section of benchmarks/RESULTS.md for the figures). Tracks are named
against the template threshold for their number of samples, above the single-photo one.
"""

from __future__ import annotations

import pytest

from facegate.track.events import IDENTIFIED, LEFT, MemorySink, check_order

pytestmark = [pytest.mark.datasets, pytest.mark.slow]


@pytest.fixture(scope="module")
def hamilton(datasets):
    folder = datasets / "video" / "hamilton"
    if not (folder / "short_hamilton_clip.mp4").exists():
        pytest.skip("video/hamilton not in the shared datasets")
    return folder


def test_hamilton_names_lin_manuel_without_switches(hamilton, home, tmp_path):
    from facegate import Config
    from facegate.gallery import open_gallery
    from facegate.pipeline import Pipeline
    from facegate.track.watch import WatchOptions, single_threaded, watch

    cfg = single_threaded(Config(home=home, gallery=tmp_path / "g.sqlite", far=1e-3, min_face_size=30))
    pipe = Pipeline(cfg)
    sink = MemorySink()
    with open_gallery(cfg, pipeline=pipe) as g:
        g.enroll("Lin-Manuel Miranda", [hamilton / "lin-manuel-miranda.png"], pick="largest")
        g.enroll("Alex Lacamoire", [hamilton / "alex-lacamoire.png"], pick="largest")
        res = watch(hamilton / "short_hamilton_clip.mp4", pipeline=pipe, gallery=g, events=sink,
                    options=WatchOptions(progress=False))
        policy = g.decision_policy()
    assert res.frames == 275 and check_order(sink.events) == []
    named = [(e["track"], e["frame"], e["name"]) for e in sink.of(IDENTIFIED)]
    lin = [(t, f) for t, f, n in named if n == "Lin-Manuel Miranda"]
    assert any(f < 20 for _t, f in lin), named  # the wide shot
    assert any(82 < f < 211 for _t, f in lin), named  # the close-up
    assert not any(f > 211 for _t, f in lin), named  # nobody in the audience
    assert res.switches == 0 and all(not e["switch"] for e in sink.of(IDENTIFIED))
    # tracks are named at the gallery's FPIR: its per-identity FAR, and a template bar above one photo's
    assert all(abs(e["far"] - policy.far) < 1e-12 and e["threshold"] >= policy.threshold for e in sink.of(IDENTIFIED))
    assert sum(e["reason"] == "scene_cut" for e in sink.of(LEFT)) >= 3

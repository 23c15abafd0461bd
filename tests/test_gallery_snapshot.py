"""One gallery snapshot per request: identification, the gate and the service's answers read the
gallery's model, size and templating once and decide with that one reading.

A backend that counts its reads shows how often each request reads the gallery; an enrolment
injected into the search (after the snapshot, before the answer) shows that the answer keeps
one gallery size throughout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.config import Config
from facegate.gallery import Gallery, GallerySnapshot, SqliteBackend
from facegate.gallery.types import FaceRecord

DIM = 32
MODEL = "synthetic-32"
READS = ("model", "counts", "face_count_histogram", "state", "person", "face_counts", "search")


class CountingBackend(SqliteBackend):
    """The SQLite backend, counting every read of the gallery's state; ``during_search`` (if set) runs
    once inside the next search, before it: a write landing in the middle of a request."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.reads: Counter[str] = Counter()
        self.during_search: Callable[[], None] | None = None

    def model(self):
        self.reads["model"] += 1
        return super().model()

    def counts(self):
        self.reads["counts"] += 1
        return super().counts()

    def face_count_histogram(self):
        self.reads["face_count_histogram"] += 1
        return super().face_count_histogram()

    def state(self):
        self.reads["state"] += 1
        return super().state()

    def person(self, ref):
        self.reads["person"] += 1
        return super().person(ref)

    def face_counts(self, person_ids):
        self.reads["face_counts"] += 1
        return super().face_counts(person_ids)

    def search(self, queries, k):
        self.reads["search"] += 1
        hook, self.during_search = self.during_search, None
        if hook is not None:
            hook()
        return super().search(queries, k)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def gallery(tmp_path):
    """Twelve people with 1-4 faces each, decided at the shipped stack's FPIR policy (no explicit
    threshold, so each candidate's bar depends on their face count)."""
    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    backend = CountingBackend(cfg.gallery_path)
    g = Gallery(backend, cfg)
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((12, DIM)))
    for i, c in enumerate(centres):
        shots = unit(c + 0.2 * rng.standard_normal((1 + i % 4, DIM)) / np.sqrt(DIM))
        g.enroll_embeddings(f"p{i}", shots, model=MODEL)
    g.centres = centres  # type: ignore[attr-defined]
    yield g
    g.close()


def _other(g: Gallery, name: str, faces: int, seed: int) -> np.ndarray:
    """Enrol ``name`` straight into the backend (as another process would) and return their centre."""
    rng = np.random.default_rng(seed)
    c = unit(rng.standard_normal(DIM))
    shots = unit(c + 0.2 * rng.standard_normal((faces, DIM)) / np.sqrt(DIM))
    g.backend.add_faces(name, [FaceRecord(embedding=v) for v in shots], MODEL, DIM)
    return c


def test_identify_reads_the_gallery_once_per_request(gallery):
    backend: CountingBackend = gallery.backend  # type: ignore[assignment]
    backend.reads.clear()
    found = gallery.identify_embeddings(gallery.centres, model=MODEL, k=3)
    assert [f.name for f in found] == [f"p{i}" for i in range(12)]
    # model, size and templating in one read; the candidates' face counts in one more; nothing else
    assert {r: backend.reads[r] for r in READS} == {
        "model": 0, "counts": 0, "face_count_histogram": 0, "state": 1, "person": 0, "face_counts": 1, "search": 1,
    }
    assert len({id(f.policy) for f in found}) == 1


def test_one_snapshot_decides_a_whole_answer_even_when_someone_enrols_meanwhile(gallery):
    backend: CountingBackend = gallery.backend  # type: ignore[assignment]
    before = gallery.snapshot()
    assert before.state.people == 12 and before.policy.identities == 12
    zed: list[np.ndarray] = []
    backend.during_search = lambda: zed.append(_other(gallery, "Zed", 4, seed=99))
    probes = np.vstack([gallery.centres[:3]])
    found = gallery.identify_embeddings(probes, model=MODEL, k=3)
    # the enrolment landed after the snapshot: the whole answer is at 12 identities, one policy
    assert {f.policy.identities for f in found} == {12} and len({id(f.policy) for f in found}) == 1
    assert found[0].policy.threshold == before.policy.threshold
    after = gallery.snapshot()
    assert after.state.people == 13 and after.policy.identities == 13
    assert after.policy.threshold > before.policy.threshold  # one more identity: a stricter bar
    # Zed was searched (the index caught up) and is held to the bar of the 4 faces that were searched
    (z,) = gallery.identify_embeddings(zed[0], model=MODEL, k=1, snapshot=after)
    assert z.candidates[0].name == "Zed" and z.candidates[0].threshold == pytest.approx(after.policy.bar(4))


def test_identify_of_a_photo_takes_one_snapshot_and_can_be_given_one(gallery, tmp_path):
    """Gallery.identify reads the gallery once before the models run, or uses the caller's snapshot (the
    service and the CLI report the size of the snapshot they pass)."""
    from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

    pipe = SyntheticPipeline(gallery.config)
    g = Gallery(CountingBackend(tmp_path / "photos.sqlite"), gallery.config, pipeline=pipe)
    try:
        g.enroll("Ada", [encode(synthetic_face(1, s)) for s in range(2)])
        g.backend.reads.clear()  # type: ignore[attr-defined]
        (ada,) = g.identify(encode(synthetic_face(1, 5)))
        assert ada.name == "Ada"
        assert g.backend.reads["state"] == 1 and g.backend.reads["model"] == 0  # type: ignore[attr-defined]
        snap = g.snapshot()
        g.backend.reads.clear()  # type: ignore[attr-defined]
        (ada,) = g.identify(encode(synthetic_face(1, 5)), snapshot=snap)
        assert ada.policy is snap.policy and g.backend.reads["state"] == 0  # type: ignore[attr-defined]
    finally:
        g.close()


def test_the_default_state_reads_through_the_public_interface(gallery):
    """A backend without its own state() (no transactions) still gives one GalleryState per request."""
    from facegate.gallery import GalleryBackend

    state = GalleryBackend.state(gallery.backend)
    assert state == gallery.backend.state()
    assert state.people == 12 and state.faces == sum(1 + i % 4 for i in range(12))
    assert dict(state.face_counts) == {1: 3, 2: 3, 3: 3, 4: 3}
    assert GalleryBackend.face_counts(gallery.backend, [1, 2, 999]) == gallery.backend.face_counts([1, 2, 999]) == {1: 1, 2: 2}


def test_the_service_decides_and_reports_with_one_snapshot(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from facegate.service import ServiceSettings, create_app
    from facegate.service.auth import create_key
    from facegate.service.synthetic import SYNTHETIC_MODEL, SyntheticPipeline, encode, synthetic_face

    cfg = Config(home=tmp_path, gallery=tmp_path / "g.sqlite")
    pipe = SyntheticPipeline(cfg)
    backend = CountingBackend(cfg.gallery_path)
    g = Gallery(backend, cfg, pipeline=pipe)
    app = create_app(cfg, ServiceSettings(), pipeline=pipe, gallery=g)
    api = "/api/v1"
    try:
        with TestClient(app) as c:
            h = {"X-API-Key": create_key(app.state.svc.db, "admin")["key"]}
            for person in (1, 2, 3):
                files = [("images", (f"{s}.jpg", encode(synthetic_face(person, s)), "image/jpeg")) for s in range(2)]
                assert c.post(f"{api}/people", headers=h, data={"name": f"p{person}"}, files=files).status_code == 201
            img = {"image": ("a.jpg", encode(synthetic_face(1, 7)), "image/jpeg")}
            seen: list[GallerySnapshot] = []
            real = g.snapshot
            g.snapshot = lambda policy=None: seen.append(real(policy)) or seen[-1]  # type: ignore[method-assign]

            def enrol_meanwhile() -> None:
                g.backend.add_faces("late", [FaceRecord(embedding=unit(np.ones(48)))], SYNTHETIC_MODEL, 48)

            for path, files in ((f"{api}/identify", {"image": img["image"]}), (f"{api}/gates/g1/check", img)):
                backend.reads.clear()
                seen.clear()
                backend.during_search = enrol_meanwhile if path.endswith("identify") else None
                r = c.post(path, headers=h, files=files)
                assert r.status_code == 200, r.text
                assert len(seen) == 1 and backend.reads["state"] == 1, path
                assert backend.reads["model"] == backend.reads["counts"] == backend.reads["person"] == 0, path
                body = r.json()
                if path.endswith("identify"):
                    assert body["decision"]["identities"] == seen[0].state.people == 3  # not 4: "late" came after
                    assert body["faces"][0]["identity"] == "p1"
                else:
                    assert body["decision"] == "allow" and body["name"] == "p1"
                    assert body["threshold"] == pytest.approx(seen[0].policy.bar(2), abs=1e-6)
            seen.clear()
            stats = c.get(f"{api}/gallery", headers=h).json()
            assert len(seen) == 1 and stats["people"] == seen[0].state.people == 4 and stats["faces"] == 7
    finally:
        g.close()

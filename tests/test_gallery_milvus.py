"""The Milvus backend against milvus-lite (embedded Milvus, same pymilvus client API as a cluster),
and one behavioural contract run on both backends. Skips cleanly when milvus-lite cannot start."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Config
from facegate.gallery import (
    ModelMismatchError,
    NameTakenError,
    PersonNotFoundError,
    open_gallery,
)

DIM = 32
MODEL = "synthetic-32"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def people(n: int, faces: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n, DIM)))
    return centres, unit(centres[:, None, :] + 0.5 * rng.standard_normal((n, faces, DIM)) / np.sqrt(DIM))


@pytest.fixture(scope="module")
def milvus_ok(tmp_path_factory) -> None:
    pytest.importorskip("pymilvus")
    try:
        from pymilvus import MilvusClient

        c = MilvusClient(str(tmp_path_factory.mktemp("probe") / "probe.db"))
        c.list_collections()
        c.close()
    except Exception as exc:  # noqa: BLE001 - milvus-lite missing or cannot start here
        pytest.skip(f"milvus-lite cannot start: {exc}")


def _open(tmp_path, backend: str, rule: str | None = None):
    cfg = Config(
        home=tmp_path,
        gallery=tmp_path / "g.sqlite",
        backend=backend,
        milvus_uri=str(tmp_path / "milvus" / "g.db"),
        threshold=0.7,
    )
    return open_gallery(cfg, rule=rule)


@pytest.fixture(params=["sqlite", "milvus"])
def backend(request):
    if request.param == "milvus":
        request.getfixturevalue("milvus_ok")
    return request.param


@pytest.mark.parametrize("rule", ["mean", "max"])
def test_same_contract_on_both_backends(tmp_path, backend, rule):
    centres, shots = people(30)
    g = _open(tmp_path, backend, rule)
    try:
        assert g.backend.name == backend and g.rule == rule
        for i in range(30):
            r = g.enroll_embeddings(f"p{i}", shots[i], model=MODEL)
            assert r.created and r.person.faces == 3 and len(r.face_ids) == 3
        res = g.identify_embeddings(centres, model=MODEL, k=3)
        assert [x.name for x in res] == [f"p{i}" for i in range(30)]
        assert all(len(x.candidates) == 3 and x.candidates[0].same for x in res)
        assert g.enroll_embeddings("p0", shots[0][:1], model=MODEL).person.faces == 4

        with pytest.raises(ModelMismatchError):
            g.enroll_embeddings("q", shots[0], model="other-model")
        assert g.rename("p1", "Ada").name == "Ada"
        with pytest.raises(NameTakenError):
            g.rename("Ada", "p2")
        assert g.identify_embeddings(centres[1], model=MODEL)[0].name == "Ada"
        assert g.delete("Ada").faces == 3
        assert g.identify_embeddings(centres[1], model=MODEL)[0].name == "unknown"
        with pytest.raises(PersonNotFoundError):
            g.person("Ada")
        assert g.backend.counts() == (29, 88)
        assert len(g.people()) == 29 and g.people()[0].name == "p0"
        assert len(g.faces("p0")) == 4 and g.person(g.person("p3").id).name == "p3"
        assert g.check()["ok"]
    finally:
        g.close()
    # reopening keeps everything, including the rule
    g = _open(tmp_path, backend)
    try:
        assert g.rule == rule and g.model() == MODEL
        assert g.identify_embeddings(centres[5], model=MODEL)[0].name == "p5"
    finally:
        g.close()


def test_milvus_orphan_faces_are_invisible_and_repaired(tmp_path, milvus_ok):
    """An enrolment killed between its two Milvus writes leaves faces without a person row."""
    centres, shots = people(3)
    g = _open(tmp_path, "milvus", "max")
    try:
        g.enroll_embeddings("p0", shots[0], model=MODEL)
        b = g.backend
        b.client.insert(
            b.faces_c,
            [
                {
                    "person_id": 424242,
                    "model": MODEL,
                    "quality": "{}",
                    "source": "",
                    "created": 0.0,
                    "embedding": v.tolist(),
                }
                for v in shots[1]
            ],
        )
        assert g.identify_embeddings(centres[1], model=MODEL)[0].name == "unknown"
        assert [c.name for c in g.identify_embeddings(centres[1], model=MODEL)[0].candidates] == ["p0"]
        rep = g.check()
        assert not rep["ok"] and rep["orphan_faces"] == 3
        assert b.repair() == 3 and g.check()["ok"]
    finally:
        g.close()

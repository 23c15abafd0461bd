"""Site calibration over the service, without HTTP: estimate from the gallery (and uploaded photos of
strangers), show, adopt, revert; each change audited in the event log like access changes.

The work is :mod:`facegate.calibrate`'s and the store is the deployment's
(:func:`facegate.decide.site.store_path`, the same file ``facegate calibrate --site`` writes), so a
table adopted here or by the CLI applies to every decision of this server from the next one on
(the pipeline re-reads the store when it changes).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.errors import DatasetError, NoFaceError, UsageError
from facegate.service.errors import ApiError

if TYPE_CHECKING:
    from facegate.calibrate import SiteTable
    from facegate.service.engine import Engine

log = logging.getLogger(__name__)


def estimate_out(table: SiteTable) -> dict[str, Any]:
    """A site table as the API answers it (:class:`facegate.service.schemas.SiteEstimateOut`)."""
    counts = table.inputs.get("counts", {})
    return {"stack": table.stack, "created": table.created, "by": table.by, "reliable": table.reliable,
            "reasons": list(table.reasons), "people": int(counts.get("people", 0)),
            "impostor_pairs": int(counts.get("impostor_pairs", 0)), "stranger_photos": int(counts.get("stranger_photos", 0)),
            "map": table.map, "rows": table.rows(), "fpir": table.fpir, "suspects": table.suspects,
            "adoption": table.adoption or None}


def _embed_strangers(engine: Engine, photos: list[tuple[str, bytes]]) -> tuple[np.ndarray | None, int]:
    """One embedding per uploaded stranger photo (its largest face), and how many had none."""
    if not photos:
        return None, 0
    vecs, missing = [], 0
    for label, data in photos:
        face = engine.largest_face(data, label)
        if face is None or face.embedding is None:
            missing += 1
            continue
        vecs.append(np.asarray(face.embedding, np.float32))
    if not vecs:
        raise NoFaceError(f"no face found in any of the {len(photos)} stranger photos")
    return np.stack(vecs), missing


def calibrate(engine: Engine, strangers: list[tuple[str, bytes]], *, by: str, key_id: str | None,
              client: str | None) -> dict[str, Any]:
    """Estimate the site table from the gallery (and the strangers' photos); kept as the last estimate,
    not adopted. An empty gallery, too few people to pair, or a stack without shipped statistics is a 422."""
    from facegate.calibrate import calibrate_gallery, save_estimate
    from facegate.decide.site import store_path

    emb, missing = _embed_strangers(engine, strangers)
    sources = {"gallery": engine.gallery.backend.name, **({"strangers": f"{len(strangers)} uploaded photos"} if strangers else {})}
    try:
        table, _ = calibrate_gallery(engine.pipeline, engine.gallery, strangers=emb, sources=sources, by=by)
    except (UsageError, DatasetError) as exc:  # an empty gallery, nothing to pair, a stack without shipped statistics
        raise ApiError(422, "cannot_calibrate", str(exc)) from exc
    save_estimate(store_path(engine.config), table)
    engine.db.add_event("audit", action="site_calibrate", key_id=key_id, client=client,
                        detail={"created": table.created, "reliable": table.reliable, "reasons": table.reasons,
                                "impostor_pairs": table.inputs.get("counts", {}).get("impostor_pairs", 0),
                                "strangers": len(strangers) - missing})
    log.info("site calibration estimated by %s: %s", by, "reliable" if table.reliable else "UNRELIABLE")
    return {"estimate": estimate_out(table), "in_force": engine.pipeline.tables().describe(),
            "strangers": len(strangers) - missing, "strangers_without_face": missing}


def show(engine: Engine) -> dict[str, Any]:
    """The table in force, the site table and the last estimate, the audit log, the drift warnings."""
    from facegate.calibrate import audit_log, last_estimate, table_in_force
    from facegate.decide.site import store_path

    tables = engine.pipeline.tables()
    store = store_path(engine.config)
    current = table_in_force(store, tables.key)
    estimate = last_estimate(store, tables.key)
    return {"stack": tables.key, "in_force": tables.describe(), "site_table": estimate_out(current) if current else None,
            "last_estimate": estimate_out(estimate) if estimate else None,
            "log": [e.to_dict() for e in audit_log(store, tables.key)], "status": engine.site_status()}


def adopt(engine: Engine, *, force: bool, note: str, by: str, key_id: str | None, client: str | None) -> dict[str, Any]:
    """Put the last estimate in force (409 without one, or when it is unreliable and not ``force``)."""
    from facegate.calibrate import SiteTableError, UnreliableEstimateError, last_estimate
    from facegate.calibrate import adopt as adopt_table
    from facegate.decide.site import store_path
    from facegate.decide.tables import in_force

    beneath = in_force(engine.pipeline.config, site=False)
    store = store_path(engine.config)
    try:
        estimate = last_estimate(store, beneath.key)
    except SiteTableError as exc:
        raise ApiError(409, exc.code, str(exc)) from exc
    if estimate is None:
        raise ApiError(409, "no_estimate", "no site estimate to adopt: POST /api/v1/calibration first")
    try:
        event = adopt_table(store, estimate, by=by, force=force, shipped_points=beneath.operating_points, note=note)
    except UnreliableEstimateError as exc:
        raise ApiError(409, exc.code, f"{exc}; adopt with force=true to adopt it anyway (recorded as forced)",
                       {"reasons": exc.reasons}) from exc
    engine.db.add_event("audit", action="site_adopt", key_id=key_id, client=client, detail=event.to_dict())
    log.warning("site table of %s adopted by %s%s", estimate.created, by, " (FORCED)" if event.forced else "")
    return {"event": event.to_dict(), "in_force": engine.pipeline.tables().describe()}


def revert(engine: Engine, *, note: str, by: str, key_id: str | None, client: str | None) -> dict[str, Any]:
    """Take the adopted site table out of force (409 when none is)."""
    from facegate.calibrate import SiteTableError
    from facegate.calibrate import revert as revert_table
    from facegate.decide.site import store_path
    from facegate.decide.tables import in_force

    beneath = in_force(engine.pipeline.config, site=False)
    try:
        event = revert_table(store_path(engine.config), beneath.key, by=by, shipped_points=beneath.operating_points,
                             note=note)
    except SiteTableError as exc:
        raise ApiError(409, exc.code, str(exc)) from exc
    engine.db.add_event("audit", action="site_revert", key_id=key_id, client=client, detail=event.to_dict())
    log.warning("site table reverted by %s", by)
    return {"event": event.to_dict(), "in_force": engine.pipeline.tables().describe()}


__all__ = ["adopt", "calibrate", "estimate_out", "revert", "show"]

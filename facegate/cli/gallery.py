"""Gallery commands: enroll, identify, people, cluster, reembed, gallery. Thin wrappers over
:mod:`facegate.gallery`; exit codes 10-13 are the gallery's (see ``facegate.gallery.errors``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from facegate.cli.args import int_arg, name_arg, person_arg
from facegate.cli.common import cli_message, config_from_args, emit, error_payload, exit_codes_epilog, format_mapping
from facegate.cli.core import far_arg as _far
from facegate.cli.core import fpir_arg as _fpir
from facegate.cli.core import pick_option, threshold_arg
from facegate.errors import ExitCode, UsageError

log = logging.getLogger(__name__)

# Clustering links every pair of faces, so one false link merges two people: it decides at a
# stricter FAR than verification. On LFW (benchmarks/bench_gallery.py, 2,010 faces of 557 people)
# FAR 1e-3 gave pairwise precision 0.857 / recall 0.994, FAR 1e-4 0.986 / 0.991.
CLUSTER_FAR = 1e-4

GALLERY_EXIT_CODES = exit_codes_epilog(
    "gallery exit codes", ExitCode.GALLERY, ExitCode.NOT_FOUND, ExitCode.NAME_TAKEN, ExitCode.REJECTED,
    ExitCode.CONFLICT, ExitCode.MODEL
)


def gallery_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("gallery options")
    g.add_argument(
        "--backend",
        choices=["sqlite", "milvus"],
        default=argparse.SUPPRESS,
        help="sqlite (default: SQLite file + FAISS index) or milvus",
    )
    g.add_argument(
        "--milvus-uri",
        default=argparse.SUPPRESS,
        help="Milvus server/cluster, e.g. http://milvus:19530, or a local milvus-lite file",
    )
    g.add_argument(
        "--index",
        choices=["auto", "flat", "hnsw"],
        default=argparse.SUPPRESS,
        help="vector index: auto (exact below --ann-threshold people, HNSW above), flat, hnsw",
    )
    g.add_argument(
        "--ann-threshold",
        type=int_arg(1, 10**12),
        default=argparse.SUPPRESS,
        help="index entries from which 'auto' switches to HNSW (default 50000)",
    )
    g.add_argument(
        "--rule",
        choices=["mean", "max"],
        default=None,
        help="identity-level matching, stored with the gallery: mean (template of all a person's "
        "faces, default) or max (best single face)",
    )
    return p


def _rate(far: float) -> str:
    """1e-4 rather than 0.0001: how rates are written everywhere else in facegate."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _decision_options(p: argparse.ArgumentParser, default_far: float = 1e-3) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--far", type=_far, help=f"false-accept rate of the decision threshold (default {_rate(default_far)})")
    g.add_argument("--threshold", type=threshold_arg, help="explicit cosine threshold; the FAR is then not stated")


def identification_options(p: argparse.ArgumentParser) -> None:
    """--fpir / --threshold for 1:N decisions (identify, watch, serve)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fpir", type=_fpir, help="share of strangers named, to decide at (default 1e-2); the false-"
                   "positive identification rate: the threshold follows from the calibrated curve and the number "
                   "of enrolled people")
    g.add_argument("--threshold", type=threshold_arg, help="explicit cosine threshold for everyone; the FAR/FPIR "
                   "the calibrated table gives for it is reported")


def _config(args: argparse.Namespace):
    over: dict[str, Any] = {}
    for name in ("backend", "milvus_uri", "index", "ann_threshold"):
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    if getattr(args, "k", None):
        over["top_k"] = args.k
    return config_from_args(args, **over)


def _open(args: argparse.Namespace):
    from facegate.gallery import open_gallery

    return open_gallery(_config(args), rule=getattr(args, "rule", None))


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parents = [common, gallery_options()]

    p = sub.add_parser(
        "enroll",
        parents=parents,
        help="add a person (or more photos of them) to the gallery",
        usage="%(prog)s --name NAME PHOTO [PHOTO ...] | --folders DIR  [options]",
        description="Enrol NAME from photos (the largest face of each) through the quality gate and the integrity "
        "checks: a face that is another enrolled person, does not match NAME's photos, or whose photo is enrolled "
        "under another name is refused (exit 15) unless --force. Refusals say why.",
        example="facegate enroll --name 'Ada Lovelace' ada1.jpg ada2.jpg",
        epilog="The accepted faces are stored together in one transaction. Enrolling an existing name adds photos to "
        "that\nperson; a photo already enrolled for them (same bytes) is skipped and said.\n\nexamples:\n"
        "  facegate enroll --name 'Ada Lovelace' ada1.jpg ada2.jpg ada3.jpg\n"
        "  facegate enroll --name Bob --pick single passport.jpg   refuse a photo with several faces\n"
        "  facegate enroll --name Bob --force bob_old.jpg         recorded as forced\n"
        "  facegate enroll --folders staff/ --pick center        staff/<name>/<photos>, resumable\n\n"
        + GALLERY_EXIT_CODES,
    )
    p.add_argument("--name", type=name_arg, help="the person's name (unique in the gallery)")
    p.add_argument("photos", nargs="*", metavar="PHOTO", help="photos of the person")
    p.add_argument("--folders", type=Path, metavar="DIR",
                   help="bulk: every sub-folder of DIR is one person, named after it; DIR/<name>/<photos>, "
                   "resumable (photos already enrolled, same sha256, are skipped; refusals are remembered), "
                   "with a progress bar and a report of refused photos")
    pick_option(p)
    p.add_argument("--force", action="store_true",
                   help="enrol what the integrity checks refuse, recorded as forced; the checks: the face is "
                   "another enrolled person, does not match NAME's photos, or the photo is enrolled under another "
                   "name")
    p.add_argument("--existing-only", action="store_true", help="refuse if NAME is not enrolled yet")
    m = p.add_argument_group("more options")
    m.add_argument("--journal", type=Path, help="--folders: where refusals are remembered (default beside the "
                   "gallery, one per DIR)")
    m.add_argument("--no-crops", action="store_true",
                   help="keep no small face crop per face; then 'reembed' cannot convert these faces")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser(
        "identify",
        parents=parents,
        help="who is in this photo? top-k people per face, or unknown (exit 0 someone known, 1 all unknown)",
        description="For every face in PHOTO: the enrolled person it is, or unknown, decided at a stated "
        "false-positive identification rate (FPIR, default 1e-2: one stranger in a hundred named), with the top-k "
        "candidates and their scores. The face --pick chooses (the largest) is marked: the one a gate decides on.",
        example="facegate identify group.jpg --fpir 1e-3",
        epilog="The threshold follows from the calibrated per-comparison curve, the number of enrolled people (each "
        "gets a\nFAR of FPIR / N) and how many photos each was enrolled with; it rises as people are enrolled. Every "
        "answer\nshows the FPIR, the per-comparison FAR, the threshold applied and the expected TPIR; a warning says "
        "when\nthe FPIR cannot be held with a usable TPIR at the gallery's size.\n\n"
        "examples:\n  facegate identify group.jpg\n  facegate identify door.jpg --fpir 1e-3 -k 3 --json\n\n"
        + GALLERY_EXIT_CODES,
    )
    p.add_argument("photo", metavar="PHOTO", help="the photo")
    p.add_argument("-k", type=int_arg(1, 1000), default=None, help="candidates per face (default 5)")
    identification_options(p)
    pick_option(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("people", parents=parents, help="list, show, rename or delete enrolled people",
                       description="The people in the gallery (without a sub-command: list them).",
                       example="facegate people show 'Ada Lovelace'")
    psub = p.add_subparsers(dest="people_command", metavar="SUBCOMMAND")
    q = psub.add_parser("list", parents=parents, help="every enrolled person",
                        description="Every enrolled person: id, name and number of faces.",
                        example="facegate people list --limit 20")
    q.add_argument("--limit", type=int_arg(1), default=None, help="at most this many people")
    q.set_defaults(func=cmd_people_list)
    q = psub.add_parser("show", parents=parents, help="one person and their stored faces",
                        description="One person and their stored faces (source photo, quality).",
                        example="facegate people show 'Ada Lovelace'")
    q.add_argument("person", type=person_arg, metavar="PERSON", help="name or id")
    q.set_defaults(func=cmd_people_show)
    q = psub.add_parser("rename", parents=parents, help="change a person's name",
                        description="Change a person's name (their faces and access rules stay).",
                        example="facegate people rename 'Ada' 'Ada Lovelace'")
    q.add_argument("person", type=person_arg, metavar="PERSON", help="name or id")
    q.add_argument("new_name", type=name_arg, metavar="NEW_NAME", help="the new name")
    q.set_defaults(func=cmd_people_rename)
    q = psub.add_parser("delete", parents=parents, help="delete a person and all their faces",
                        description="Delete a person with all their faces, leaving no copy of their embeddings in "
                        "the gallery's files, and the face images kept with their access events.",
                        example="facegate people delete 'Ada Lovelace'")
    q.add_argument("person", type=person_arg, metavar="PERSON", help="name or id")
    q.set_defaults(func=cmd_people_delete)
    p.set_defaults(func=cmd_people_list, limit=None)

    p = sub.add_parser(
        "cluster",
        parents=parents,
        help="group unlabelled photos by person (folders of symlinks or JSON)",
        description="Group the faces in the photos under DIR by person, at a strict FAR (default 1e-4: one false "
        "link merges two people). With --out, writes OUT/person_001/... as symlinks.",
        example="facegate cluster ~/Pictures/party --out ~/Pictures/party-by-person",
        epilog="Faces more alike than the threshold are linked among each one's nearest neighbours and the graph "
        "is\nsplit with Chinese Whispers. --out writes OUT/person_001/... (largest group first) and OUT/unclustered/ "
        "as\nsymlinks to the photos; --json prints the groups. With --eval, DIR's sub-folder names are taken as true\n"
        "labels and pairwise precision/recall are printed.\n\n"
        "examples:\n  facegate cluster ~/Pictures/party --out ~/Pictures/party-by-person\n"
        "  facegate cluster lfw_subset --pick center --eval --threshold 0.9",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="a folder of photos")
    p.add_argument("--out", type=Path, help="write folders of symlinks here")
    p.add_argument("--pick", choices=["all", "largest", "center"], default="all",
                   help="faces per photo: all (default), or only the largest/center one")
    _decision_options(p, default_far=CLUSTER_FAR)
    m = p.add_argument_group("more options")
    m.add_argument("--method", choices=["cw", "components"], default="cw",
                   help="graph split: cw (Chinese Whispers, default) or components (connected components)")
    m.add_argument("--min-size", type=int_arg(1, 10**9), default=2, help="smaller groups go to 'unclustered' (default 2)")
    m.add_argument("--eval", action="store_true", help="sub-folder names are true labels: print pairwise P/R")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser(
        "reembed",
        parents=parents,
        help="convert the gallery to another embedding model (required before using a new model)",
        description="Re-compute every stored face's embedding with the model given by --embedder, from the face "
        "crops kept at enrolment, and swap them in with one transaction (an interrupted run resumes).",
        example="facegate reembed --embedder my_arcface",
        epilog="Faces without a crop cannot be converted: the swap is refused unless --drop-missing deletes them.",
    )
    p.add_argument("--drop-missing", action="store_true", help="delete faces that cannot be re-embedded")
    p.set_defaults(func=cmd_reembed)

    p = sub.add_parser("gallery", parents=parents, help="gallery maintenance: stats, check, rebuild-index",
                       description="Gallery maintenance (without a sub-command: stats).",
                       example="facegate gallery check")
    gsub = p.add_subparsers(dest="gallery_command", metavar="SUBCOMMAND")
    q = gsub.add_parser("stats", parents=parents, help="counts, model, index; the table in force and drift warnings",
                        description="Counts of people and faces, the model, the index kind and size; the operating-point "
                        "table in force (shipped or the adopted site table) and whether it still holds (enrolments "
                        "grown since the site calibration, denied gate checks scoring higher than it says).",
                        example="facegate gallery stats --json")
    q.set_defaults(func=cmd_gallery_stats)
    q = gsub.add_parser(
        "check", parents=parents, help="the store's integrity, the index, and people whose photos disagree or who "
        "look alike (exit 10 if any)",
        description="Check the store's integrity and the index against it, then the gallery against itself: people "
        "whose photos do not verify against each other (FAR 1e-3) and pairs of people whose templates clear the "
        "1:N bar (one person enrolled twice, or a wrong photo). Exit 10 if anything is found.",
        example="facegate gallery check",
    )
    q.set_defaults(func=cmd_gallery_check)
    q = gsub.add_parser("rebuild-index", parents=parents, help="rebuild the vector index from the store and save it",
                        description="Rebuild the vector index from the store (the source of truth) and save it.",
                        example="facegate gallery rebuild-index")
    q.set_defaults(func=cmd_gallery_rebuild)
    p.set_defaults(func=cmd_gallery_stats)


# -- handlers ------------------------------------------------------------------------------
def _reason(rejection: Any) -> str:
    """A rejected enrolment photo's reason with this front end's hint (e.g. which --pick)."""
    return cli_message(rejection.reason, rejection.code)


def choice_line(face: dict[str, Any]) -> str:
    """An enrolled face's choice as ``facegate.types.FaceChoice.describe`` words it, from its dict."""
    used = face["face_used"]
    box = ", ".join(f"{float(v):.0f}" for v in used["box"])
    return f"{face['faces_found']} faces, used #{used['index']} ({face['pick']}) at ({box})"


def cmd_enroll(args: argparse.Namespace) -> int:
    from facegate.gallery import EnrolmentRejectedError

    if args.folders is not None:
        if args.name or args.photos:
            raise UsageError("--folders takes the names from the sub-folders: give no --name and no photos")
        return cmd_enroll_folders(args)
    if not args.name or not args.photos:
        raise UsageError("enrol needs --name NAME and at least one photo (or --folders DIR)")
    with _open(args) as g:
        try:
            r = g.enroll(args.name, args.photos, pick=args.pick, create=not args.existing_only,
                         keep_crops=not args.no_crops, force=args.force)
        except EnrolmentRejectedError as exc:
            rejected = exc.rejected
            payload = {**error_payload(exc.code, exc.exit_code, cli_message(str(exc), exc.code)),
                       "person": None, "face_ids": [], "rejected": [x.to_dict() for x in rejected]}
            lines = [f"nothing enrolled for {args.name!r}:"] + [f"  refused {_reason(x)}" for x in rejected]
            emit(args, payload, "\n".join(lines))
            return exc.exit_code
    assert r.person is not None

    def text() -> str:
        if not r.face_ids:
            lines = [f"nothing new for {r.person.name} (id {r.person.id}): {r.person.faces} face(s) in total"]
        else:
            lines = [f"enrolled {r.person.name} (id {r.person.id}{', new' if r.created else ''}): "
                     f"{len(r.face_ids)} face(s) stored, {r.person.faces} in total"]
        lines += [f"  {f['source']}: {choice_line(f)}" for f in r.faces if f["faces_found"] > 1]
        lines += [f"  skipped {x['reason'].removesuffix('; skipped')}" for x in r.skipped]
        lines += [f"  FORCED {x['reason']}" for x in r.forced]
        lines += [f"  refused {_reason(x)}" for x in r.rejected]
        return "\n".join(lines)

    emit(args, r.to_dict(), text)
    return 0


def cmd_enroll_folders(args: argparse.Namespace) -> int:
    from facegate.gallery.folders import enrol_folders

    with _open(args) as g:
        rep = enrol_folders(g, args.folders, pick=args.pick, journal=args.journal,
                            progress=not getattr(args, "json", False), keep_crops=not args.no_crops, force=args.force)

    def text() -> str:
        d = rep.to_dict()
        lines = [
            f"{rep.people} people: {rep.created} new, {rep.added} given new photos, {rep.unchanged} unchanged; "
            f"{rep.enrolled_photos} photo(s) enrolled, {rep.skipped_photos} already enrolled, "
            f"{rep.refused_photos} refused" + (f" (+{rep.previously_refused} refused in earlier runs)" if rep.previously_refused else "")
        ]
        if d["refused_by_reason"]:
            lines.append("refused by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(d["refused_by_reason"].items())))
        lines += [f"  refused {cli_message(r['reason'], r['code'])}" for r in rep.refusals if not r.get("earlier_run")]
        lines += [f"  FORCED {f['reason']}" for f in rep.forced]
        lines.append(f"quality refusals are remembered in {rep.journal}")
        if rep.interrupted:
            lines.append("interrupted: run the same command again to resume")
        return "\n".join(lines)

    emit(args, rep.to_dict(), text)
    return 130 if rep.interrupted else 0


def identify_line(i: int, r: Any) -> str:
    """One face's answer: the decision with the score, the threshold applied to that candidate and the rate."""
    box = ", ".join(f"{v:.0f}" for v in r.face.box) if r.face is not None else ""
    at = r.policy.describe()
    if r.identity is not None:
        m = r.identity
        return f"face {i} ({box}): {m.name} (score {m.score:.4f} > {m.threshold:.4f}; {at})"
    if r.candidates:
        m = r.candidates[0]
        return f"face {i} ({box}): unknown (best {m.name} {m.score:.4f} <= {m.threshold:.4f}; {at})"
    return f"face {i} ({box}): unknown (gallery is empty)"


def cmd_identify(args: argparse.Namespace) -> int:
    with _open(args) as g:
        snap = g.snapshot()  # one read of the gallery: the answer, its policy and the size it reports agree
        results, choice = g.identify_photo(args.photo, k=args.k, snapshot=snap, pick=args.pick, name=args.photo)
        policy = snap.policy
        stats = {"people": snap.state.people}

    def text() -> str:
        lines = []
        for i, r in enumerate(results, 1):
            lines.append(identify_line(i, r) + ("  <- used" if len(results) > 1 and i - 1 == choice.index else ""))
            lines += [f"   {j}. {m.name:<30} {m.score:.4f}  (threshold {m.threshold:.4f})" for j, m in enumerate(r.candidates, 1)]
        if len(results) > 1:
            lines.append(f"{choice.found} faces; a one-face decision (the gate's) uses face {choice.index + 1} "
                         f"({choice.pick})")
        if policy.table_label:
            lines.append(f"table: {policy.table_label}")
        return "\n".join(lines)

    emit(args, {"photo": args.photo, "gallery_people": stats["people"], "decision": policy.to_dict(),
                **choice.to_dict(), "faces": [r.to_dict() for r in results]}, text)
    return 0 if any(r.identity is not None for r in results) else 1


def cmd_people_list(args: argparse.Namespace) -> int:
    with _open(args) as g:
        people = g.people(limit=args.limit)
        total, faces = g.backend.counts()
        model = g.model()

    def text() -> str:
        head = f"{total} people, {faces} faces, model {model or '(none yet)'}"
        rows = [f"{p.id:>8}  {p.name:<40} {p.faces:>3} face(s)" for p in people]
        return "\n".join([head] + rows)

    emit(args, {"people": [p.to_dict() for p in people], "total": total, "faces": faces, "model": model}, text)
    return 0


def cmd_people_show(args: argparse.Namespace) -> int:
    with _open(args) as g:
        p = g.person(args.person)
        faces = g.faces(p.id)

    def text() -> str:
        lines = [f"{p.name} (id {p.id}): {p.faces} face(s), model {p.model}"]
        for f in faces:
            q = ", ".join(f"{k} {v}" for k, v in f.quality.items() if k not in ("forced", "photo_sha256"))
            lines.append(f"  face {f.id}: {f.source or '-'}  [{q}]")
            lines += [f"    FORCED over: {x.get('reason', x.get('code'))}" for x in f.forced]
        return "\n".join(lines)

    emit(args, {**p.to_dict(), "face_list": [f.to_dict() for f in faces]}, text)
    return 0


def cmd_people_rename(args: argparse.Namespace) -> int:
    with _open(args) as g:
        p = g.rename(args.person, args.new_name)
    emit(args, p.to_dict(), f"renamed {args.person} -> {p.name} (id {p.id})")
    return 0


def cmd_people_delete(args: argparse.Namespace) -> int:
    """Delete a person: the gallery's faces, embeddings, crops and index entries, and, when a service
    database sits beside the gallery, the face images kept with its access events (as the API's
    delete does): theirs, and those of their denied attempts, matched against their faces."""
    from facegate.gallery import UnsupportedError
    from facegate.service.settings import default_service_db

    with _open(args) as g:
        person = g.person(args.person)
        service_db = default_service_db(g.config)
        emb, bar = None, None
        if service_db.exists():
            try:
                emb = g.embeddings(person.id)
            except UnsupportedError:
                emb = None
            ops = g.pipeline.operating_points
            bar = min(p.threshold for p in ops) if ops else None  # the loosest calibrated bar: err towards erasing
        p = g.delete(person.id)
    images = 0
    if service_db.exists():
        from facegate.service.db import ServiceDB

        db = ServiceDB(service_db)
        try:
            images = db.erase_person_images(p.id, emb if bar is not None else None, bar)
        finally:
            db.close()
    out = {**p.to_dict(), "event_images_deleted": images}
    emit(args, out, f"deleted {p.name} (id {p.id}), {p.faces} face(s) and {images} kept event image(s)")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from facegate.gallery.cluster import (
        ClusteredFace,
        ClusterResult,
        cluster_embeddings,
        embed_photos,
        find_images,
        pairwise_scores,
        write_folders,
    )
    from facegate.pipeline import Pipeline, pick_face

    config = _config(args)
    if args.far is None and args.threshold is None:
        config = config.replace(far=CLUSTER_FAR)
    pipe = Pipeline(config)
    thr, far = (float(config.threshold), None) if config.threshold is not None else pipe.threshold()
    if args.eval and not args.dir.is_dir():
        raise UsageError(f"--eval needs a folder with one sub-folder per person, not {args.dir}")
    paths = find_images(args.dir)
    if not paths:
        raise UsageError(f"{args.dir}: no photos found")
    faces, failed = embed_photos(pipe, paths, progress=not getattr(args, "json", False))
    if args.pick != "all":
        by_photo: dict[str, list] = {}
        for p, f in faces:
            by_photo.setdefault(p, []).append(f)
        faces = []
        for p, fs in by_photo.items():
            img_shape = pipe.load(p).shape if args.pick == "center" else (0, 0)
            faces.append((p, pick_face(fs, img_shape, args.pick)))  # type: ignore[arg-type]
    emb = np.stack([f.embedding for _, f in faces]) if faces else np.zeros((0, 1), np.float32)
    labels = cluster_embeddings(emb, thr, method=args.method)
    result = ClusterResult(
        [ClusteredFace(p, f, int(c)) for (p, f), c in zip(faces, labels)], thr, far, args.method, failed
    )
    payload = result.to_dict(args.min_size)
    written = write_folders(result, args.out, args.min_size) if args.out else None
    scores = None
    if args.eval:
        # Labels from the paths as found under DIR, not resolved: in a folder of symlinks the
        # photos themselves live elsewhere.
        truth = [Path(f.path).relative_to(args.dir).parts[0] for f in result.faces]
        scores = pairwise_scores(labels, truth)
        payload["evaluation"] = scores
    if written:
        payload["written"] = written

    def text() -> str:
        groups = result.clusters()
        big = [g for g in groups if len(g) >= args.min_size]
        at = f"FAR {far:g}" if far is not None else "explicit threshold"
        lines = [
            (
                f"{len(result.faces)} faces in {len(paths)} photos -> {len(big)} groups of {args.min_size}+ "
                f"(threshold {thr:.4f}, {at}, {args.method}); {len(failed)} photo(s) without a usable face"
            )
        ]
        for i, g in enumerate(big, 1):
            names = ", ".join(Path(f.path).name for f in g[:4]) + (" ..." if len(g) > 4 else "")
            lines.append(f"  person_{i:03d}: {len(g)} face(s): {names}")
        if written:
            lines.append(f"wrote {written['links']} symlinks in {written['folders']} folders under {args.out}")
        if scores:
            lines.append(
                f"pairwise precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, "
                f"F1 {scores['f1']:.4f} ({scores['people']} people, {scores['clusters']} clusters)"
            )
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def cmd_reembed(args: argparse.Namespace) -> int:
    from facegate.pipeline import Pipeline

    config = _config(args)
    with _open(args) as g:
        out = g.reembed(Pipeline(config), drop_missing=args.drop_missing, progress=not getattr(args, "json", False))
    if out.get("unchanged"):
        text = f"gallery already uses {out['model']}; nothing to do"
    else:
        text = f"re-embedded {out['reembedded']} face(s) from {out['previous_model']} to {out['model']}" + (
            f"; dropped {out['dropped']}" if out.get("dropped") else ""
        )
    emit(args, out, text)
    return 0


def cmd_gallery_stats(args: argparse.Namespace) -> int:
    with _open(args) as g:
        s = g.stats()
        s["site_calibration"] = _site_status(g)
    status = s["site_calibration"]

    def text() -> str:
        from facegate.calibrate.status import status_lines

        return "\n".join([format_mapping({k: v for k, v in s.items() if k != "site_calibration"}), *status_lines(status)])

    emit(args, s, text)
    return 0


def _site_status(g: Any) -> dict[str, Any]:
    """The table in force and the drift warnings (:func:`facegate.calibrate.site_status`); the denied-score
    check reads the gate checks since the adoption from the service database beside the gallery, if any."""
    from facegate.calibrate.status import adopted_at, adopted_site_table, site_status
    from facegate.decide.tables import in_force
    from facegate.service.settings import default_service_db

    state = g.backend.state()
    tables = in_force(g.config)
    site = adopted_site_table(g.config, tables)
    denied = bars = None
    service_db = default_service_db(g.config)
    if site is not None and service_db.exists():
        from facegate.service.db import ServiceDB

        db = ServiceDB(service_db)
        try:
            denied, bars = db.denied_best_scores(adopted_at(site))
        finally:
            db.close()
    return site_status(g.config, people=state.people, faces=state.faces, face_counts=state.face_counts,
                       denied_best=denied, bars=bars, tables=tables)


def cmd_gallery_check(args: argparse.Namespace) -> int:
    with _open(args) as g:
        s = g.check()
        c = g.consistency(progress=not getattr(args, "json", False))
    s["consistency"] = c

    def text() -> str:
        lines = [format_mapping({k: v for k, v in s.items() if k != "consistency"}), "consistency:",
                 f"  {c['people_checked']} people; photos agree at {c['verification']}; "
                 f"people told apart at {c['identification']}"]
        for d in c["disagreeing"]:
            lines.append(f"  photos disagree: {d['name']} (id {d['person_id']}, {d['faces']} faces):")
            lines += [f"    faces {p['face_ids'][0]} and {p['face_ids'][1]} ({p['sources'][0] or '-'}, "
                      f"{p['sources'][1] or '-'}) score {p['score']:.4f}" for p in d["pairs"]]
        for x in c["lookalikes"]:
            a, b = x["people"]
            lines.append(f"  look like one person: {a['name']} (id {a['person_id']}) and {b['name']} (id "
                         f"{b['person_id']}): templates score {x['score']:.4f} > {x['bar']:.4f}")
        if c["consistent"]:
            lines.append("  consistent: no photos that disagree, no two people alike")
        return "\n".join(lines)

    emit(args, s, text)
    return 0 if s.get("ok") and c["consistent"] else ExitCode.GALLERY


def cmd_gallery_rebuild(args: argparse.Namespace) -> int:
    with _open(args) as g:
        g.rebuild_index()
        saved = g.save_index(force=True)
        s = g.stats()
    emit(
        args,
        s,
        f"index rebuilt ({s.get('index', {}).get('entries', '?')} entries){'; snapshot saved' if saved else ''}",
    )
    return 0

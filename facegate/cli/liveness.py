"""Liveness commands (issue 21): ``facegate liveness PHOTO...`` (one verdict per face, or ``--burst``),
``facegate liveness fit|adopt|revert|status`` (a site's own head), ``facegate gate set|show`` (a
gate's liveness setting) and ``facegate eval pad`` (the ISO/IEC 30107-3 figures). Thin wrappers
over :mod:`facegate.liveness`, :meth:`facegate.pipeline.Pipeline.liveness`,
:mod:`facegate.service.gates` and :mod:`facegate.evaluate.pad`; plus the liveness rows of
``facegate models`` (:func:`model_rows`, :func:`model_lines`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from facegate.cli.args import float_arg, int_arg, name_arg, text_arg
from facegate.cli.common import config_from_args, emit
from facegate.errors import DatasetError, NoFaceError, UsageError

CHECK = "check"  # `facegate liveness PHOTO...` is `facegate liveness check PHOTO...`


class PhotosOrCommand(argparse._SubParsersAction):
    """Sub-commands where a first word that names none of them starts the default one (``check``),
    so ``facegate liveness a.jpg b.jpg`` and ``facegate liveness fit ...`` both parse."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyName(self._name_parser_map)  # photos pass argparse's choice check

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values and not dict.__contains__(self._name_parser_map, values[0]):
            values = [CHECK, *values]
        super().__call__(parser, namespace, values, option_string)


class _AnyName(dict):
    """The sub-parser map, seen by argparse's choice check as accepting any word."""

    def __init__(self, real: dict[str, Any]) -> None:
        super().__init__()
        self.real = real

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self):
        return iter(self.real)

    def keys(self):
        return self.real.keys()

    def items(self):
        return self.real.items()

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, key: str) -> Any:
        return self.real[key]


def _service_db(args: argparse.Namespace) -> Any:
    from facegate.service.db import ServiceDB
    from facegate.service.settings import ServiceSettings

    over: dict[str, Any] = {}
    for name in ("backend", "milvus_uri"):
        if getattr(args, name, None) is not None:
            over[name] = getattr(args, name)
    config = config_from_args(args, **over)
    db_path = Path(args.service_db) if getattr(args, "service_db", None) else None
    return ServiceDB(ServiceSettings(db_path=db_path).resolved_db(config))


def register(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    service_options: argparse.ArgumentParser | None = None,
) -> None:
    """The liveness commands; ``gate`` takes the service's options (``--service-db``, ...) when given."""
    p = sub.add_parser(
        "liveness", parents=[common],
        help="is the face live? one verdict per face; fit, adopt or revert a site's own liveness head",
        usage="%(prog)s PHOTO... [--burst] | COMMAND ... [options]",
        description="PHOTO...: one verdict per face, or with --burst one verdict for the photos as consecutive "
        "frames of one face. Each gives the live score, the threshold applied and the APCER/BPCER measured at it; "
        "exit 0 when every face is live, 1 when one is not.",
        example="facegate liveness door.jpg\nfacegate liveness f1.jpg f2.jpg f3.jpg --burst\n"
        "facegate liveness fit --live caps/live --attack caps/attack --adopt",
    )
    lsub = p.add_subparsers(dest="liveness_command", metavar="COMMAND", action=PhotosOrCommand, prog=p.prog)
    q = lsub.add_parser(CHECK, parents=[common], help="one verdict per face of each photo (the default command)",
                        description="One verdict per face of each photo (still check), or with --burst one verdict "
                        "for the photos as consecutive frames of one face (the gate's burst check).",
                        example="facegate liveness f1.jpg f2.jpg f3.jpg --burst --json")
    q.add_argument("photos", nargs="+", metavar="PHOTO", help="photos; with --burst, frames of one face in order")
    q.add_argument("--burst", action="store_true", help="the photos are consecutive frames of one face; at most 8, "
                   "taken within about 2 s")
    q.add_argument("--model", type=text_arg(4096, "a model"), default=None,
                   help="a liveness model by name or file; default: the one in force")
    q.set_defaults(func=cmd_liveness)

    q = lsub.add_parser(
        "fit", parents=[common],
        help="fit a liveness head on your own captures, show its figures; --adopt puts it in force",
        description="Fit a liveness head on folders of your live and attack captures (one sub-folder per person, "
        "frames of a take numbered), show its figures cross-validated by person, keep it in <home>/liveness "
        "(0600) with its provenance. What a --licence-policy permissive site runs.",
        example="facegate liveness fit --live caps/live --attack caps/attack --adopt",
        epilog="LIVE and ATTACK: one sub-folder per person (figures are cross-validated by person: fitted without "
        "each\nperson, scored on them); frames of one take named with a trailing number (door_001.jpg, ...) or in "
        "a\nsub-folder of their own form bursts. --adopt puts the head in force at once ('facegate liveness "
        "revert'\ngoes back). Maintainers: --nuaa DIR --out FILE writes the shipped head (both nuaa_dev sessions).",
    )
    q.add_argument("--live", type=Path, metavar="DIR", help="folder of live captures")
    q.add_argument("--attack", type=Path, metavar="DIR", help="folder of attack captures (printed photos, screens)")
    q.add_argument("--adopt", action="store_true", help="put the fitted head in force; recorded and reversible")
    q.add_argument("--name", type=text_arg(64, "a head's name"), default=None,
                   help="the head's name; default site-YYYYMMDD-HHMMSS")
    m = q.add_argument_group("more options")
    m.add_argument("--cache", type=Path, metavar="DIR", help="keep detections and cues here; outside any repository")
    m.add_argument("--nuaa", type=Path, metavar="DIR", help="maintainers: fit the shipped head on this nuaa_dev folder")
    m.add_argument("--out", type=Path, metavar="FILE", help="with --nuaa: where to write the head")
    q.set_defaults(func=cmd_liveness_fit)

    q = lsub.add_parser("adopt", parents=[common], help="put a kept head (or the shipped one) in force",
                        description="Put a site head kept in <home>/liveness, or the shipped pad_cues_nuaa, in force "
                        "(recorded, reversible with 'facegate liveness revert').",
                        example="facegate liveness adopt site-20261207-101500")
    q.add_argument("name", type=text_arg(64, "a head's name"), metavar="NAME",
                   help="a head from 'facegate liveness status', or pad_cues_nuaa")
    q.set_defaults(func=cmd_liveness_adopt)
    q = lsub.add_parser("revert", parents=[common], help="back to the head in force before the last adoption",
                        description="Put the head in force before the last adoption back in force.",
                        example="facegate liveness revert")
    q.set_defaults(func=cmd_liveness_revert)
    q = lsub.add_parser("status", parents=[common], help="the head in force, the kept site heads, the history",
                        description="Which liveness head is in force (and whether this licence policy may use it; "
                        "exit 6 when not), the site heads kept, the earlier choices.",
                        example="facegate liveness status --licence-policy permissive")
    q.set_defaults(func=cmd_liveness_status)
    p.set_defaults(func=cmd_liveness_status)

    parents = [common, service_options] if service_options is not None else [common]
    p = sub.add_parser(
        "gate", parents=parents,
        help="a gate's settings: its liveness check (off, still, burst; on by default)",
        description="Every gate has liveness on unless set otherwise: burst (the default) checks a burst when a gate "
        "check carries several frames, else the still check; still always the still check; off none. Audited; "
        "the same as PUT /api/v1/gates/GATE/settings.",
        example="facegate gate set front-door --liveness still",
    )
    gsub = p.add_subparsers(dest="gate_command", metavar="SUBCOMMAND")
    q = gsub.add_parser("set", parents=parents, help="set a gate's liveness check (audited)",
                        description="Set GATE's liveness check; the change is an audit event. 'off' is an explicit "
                        "choice: the gate then opens for a photo of an enrolled person.",
                        example="facegate gate set lab --liveness off")
    q.add_argument("gate", type=name_arg, metavar="GATE", help="the gate's name")
    q.add_argument("--liveness", required=True, choices=("off", "still", "burst"), help="the check (required)")
    q.set_defaults(func=cmd_gate_set)
    q = gsub.add_parser("show", parents=parents, help="a gate's settings (all changed gates without GATE)",
                        description="A gate's settings, or every gate whose settings were changed and the default.",
                        example="facegate gate show front-door")
    q.add_argument("gate", type=name_arg, nargs="?", metavar="GATE", help="the gate's name; default: every changed gate")
    q.set_defaults(func=cmd_gate_show)
    p.set_defaults(func=cmd_gate_show, gate=None)

    eval_parser = sub.choices.get("eval")
    esub = next((a for a in getattr(eval_parser, "_actions", []) if isinstance(a, argparse._SubParsersAction)), None)
    if esub is not None:
        _register_eval_pad(esub, common)


def _register_eval_pad(esub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from facegate.evaluate.pad import DEFAULT_GAP

    e = esub.add_parser(
        "pad", parents=[common],
        help="presentation-attack detection: APCER, BPCER, ACER, intervals over people, DET plot",
        description="ISO/IEC 30107-3 figures for stills and bursts: APCER, BPCER, ACER at the threshold, BPCER at "
        "APCER 1% and 5%, AUC, 95% intervals from resampling people. DIR: your captures (live/, attack/), or "
        "nuaa_dev (real/, attack/).",
        example="facegate eval pad nuaa_dev/ --fit-session 1 --score-session 2 --plot det.png",
        epilog="Your captures (DIR/live/<person>/*, DIR/attack/<person>/*) are scored by the liveness model in force "
        "(or\n--model) at its own thresholds. On nuaa_dev, --fit-session A --score-session B fits the shipped recipe "
        "on\nsession A and scores session B; without --fit-session the model in force scores --score-session.\n\n"
        "examples:\n"
        "  facegate eval pad ../shared/datasets/nuaa_dev --fit-session 2 --score-session 1 --blur-live 1 "
        "--sharpen-attack\n"
        "  facegate eval pad captures/                the model in force on your own captures",
    )
    e.add_argument("dir", type=Path, metavar="DIR", help="live/ and attack/ captures, or the nuaa_dev folder")
    e.add_argument("--fit-session", choices=("1", "2"), default=None,
                   help="nuaa_dev: fit the recipe on this session; and score --score-session (default the other)")
    e.add_argument("--score-session", choices=("1", "2"), default=None, help="nuaa_dev: score this session")
    e.add_argument("--plot", type=Path, metavar="FILE", help="write a DET plot (PNG) here")
    e.add_argument("--blur-live", type=float_arg(0.0, 20.0), default=0.0, metavar="SIGMA",
                   help="blur the scored live frames (a softer camera); Gaussian sigma in px at 640x480")
    e.add_argument("--sharpen-attack", action="store_true",
                   help="sharpen the scored attack frames (a crisper printer); unsharp mask radius 2, 150%%")
    e.add_argument("--burst", type=int_arg(2, 8, "a burst's length"), action="append", metavar="N",
                   help="burst lengths to score; default 3 and 5")
    m = e.add_argument_group("more options")
    m.add_argument("--model", type=text_arg(4096, "a model"), default=None,
                   help="score this liveness model (name or file) instead of the one in force")
    m.add_argument("--bootstrap", type=int_arg(10, 100_000), default=2000, help="resamplings of people; default 2000")
    m.add_argument("--cache", type=Path, metavar="DIR", help="keep detections and cues here; outside any repository")
    m.add_argument("--cue-table", action="store_true", help="nuaa_dev protocol: also score every cue alone")
    m.add_argument("--still-cues", type=text_arg(500, "cue names"), help="nuaa_dev protocol: the still head's cues")
    m.add_argument("--burst-cues", type=text_arg(500, "cue names"), help="nuaa_dev protocol: the burst head's cues")
    m.add_argument("--gap", type=text_arg(20, "a threshold rule"), default=str(DEFAULT_GAP),
                   help="nuaa_dev protocol: threshold rule (head.gap_threshold), or 'none' for 0.5")
    e.set_defaults(func=cmd_eval_pad)


# -- facegate liveness PHOTO... ---------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "not measured" if v is None else f"{100 * v:.1f}%"


def _verdict_line(v: dict[str, Any]) -> str:
    score = "refused before scoring" if v["score"] is None else f"score {v['score']:.3f}"
    cmp = "" if v["score"] is None else (" >= " if v["live"] else " < ") + f"threshold {v['threshold']:.3f}"
    word = "LIVE" if v["live"] else f"NOT LIVE ({v['reason']})"
    frames = f", {v['frames']} frame(s)" + (f", {v['frames_without_face']} without a face" if v["frames_without_face"] else "")
    return (f"{word}: {score}{cmp} ({v['mode']}{frames if v['mode'] == 'burst' or v['frames_without_face'] else ''}; "
            f"APCER {_pct(v['apcer'])}, BPCER {_pct(v['bpcer'])} at this threshold)")


def cmd_liveness(args: argparse.Namespace) -> int:
    from facegate.liveness import load_liveness
    from facegate.pipeline import Pipeline

    config = config_from_args(args)
    pipe = Pipeline(config)
    det = load_liveness(args.model, config) if args.model else pipe.liveness_detector
    pipe.liveness_detector = det
    model = {"name": det.model.name, "sha256": det.model.sha256, "source": det.model.source}
    if args.burst:
        v = pipe.liveness_burst(args.photos).to_dict()
        measured = v["measured_on"]

        line = f"burst of {len(args.photos)}: {_verdict_line(v)}\n  model {model['name']}; measured on: {measured}"
        emit(args, {"burst": [str(p) for p in args.photos], "verdict": v, "model": model}, line)
        return 0 if v["live"] else 1
    photos: list[dict[str, Any]] = []
    for photo in args.photos:
        photos.append({"photo": str(photo), "faces": [x.to_dict() for x in pipe.liveness(photo)]})
    verdicts: list[dict[str, Any]] = [f for p in photos for f in p["faces"]]
    if not verdicts:
        raise NoFaceError(f"no face found in {'the photo' if len(photos) == 1 else f'any of the {len(photos)} photos'}")

    def text() -> str:
        lines = []
        for p in photos:
            if not p["faces"]:
                lines.append(f"{p['photo']}: no face found")
            for i, f in enumerate(p["faces"], 1):
                box = ",".join(f"{v:.0f}" for v in f["box"] or [])
                lines.append(f"{p['photo']} face {i} [{box}]: {_verdict_line(f)}")
        lines.append(f"  model {model['name']}; measured on: {verdicts[0]['measured_on']}")
        return "\n".join(lines)

    emit(args, {"photos": photos, "model": model}, text)
    return 0 if all(f["live"] for f in verdicts) else 1


# -- fit, adopt, revert, status -----------------------------------------------------------------------


def _report_line(r: Any) -> str:
    return r.line() if hasattr(r, "line") else str(r)


def cmd_liveness_fit(args: argparse.Namespace) -> int:
    from facegate.evaluate import pad
    from facegate.liveness import adopt, save_site_model
    from facegate.liveness.registry import check_site_name

    config = config_from_args(args)
    progress = not getattr(args, "json", False)
    if args.nuaa is not None:
        if args.out is None or args.live or args.attack or args.adopt:
            raise UsageError("--nuaa DIR writes the shipped head: give --out FILE (and no --live/--attack/--adopt)")
        model, results = pad.fit_nuaa_model(args.nuaa, args.out, cache=args.cache, progress=progress)
        emit(args, {"path": model.path, "sha256": model.sha256, "numbers": model.size, "results": results},
             lambda: pad.format_results(results) + f"\nwrote {model.path} (sha256 {model.sha256}, {model.size} numbers)")
        return 0
    if args.live is None or args.attack is None:
        raise UsageError("give --live DIR and --attack DIR (folders of your own live and attack captures)")
    if args.out is not None:
        raise UsageError("--out goes with --nuaa; a site's head is kept in <home>/liveness (see 'facegate liveness status')")
    import time

    name = check_site_name(args.name or time.strftime("site-%Y%m%d-%H%M%S", time.gmtime()))
    model, cv = pad.fit_site(args.live, args.attack, name, cache=args.cache, progress=progress, config=config)
    model = save_site_model(model, config)
    record = adopt(config, model.name) if args.adopt else None
    payload = {"model": model.to_json(), "path": model.path, "sha256": model.sha256,
               "cross_validation": cv.to_dict(), "adopted": record.to_dict() if record else None}

    def text() -> str:
        lines = [f"fitted liveness head {model.name} ({model.size} numbers) on {model.training_data}",
                 f"cross-validated by person ({cv.folds} folds, {cv.skipped_folds} skipped), at each fold's threshold:"]
        lines += ["  " + _report_line(r) for r in cv.reports.values()]
        lines.append("by person (held out of the fit): APCER = their attacks accepted, BPCER = their live refused")
        for person, modes in sorted(cv.by_person.items()):
            parts = [f"{m}: APCER {_pct(x['apcer'])} of {x['attack']}, BPCER {_pct(x['bpcer'])} of {x['live']}"
                     for m, x in modes.items()]
            lines.append(f"  {person:<20} " + "; ".join(parts))
        lines.append(f"kept as {model.path} (sha256 {model.sha256[:16]}...)")
        if record:
            lines.append(f"in force now (adopted {record.adopted}); 'facegate liveness revert' goes back")
        else:
            lines.append(f"not in force: adopt it with 'facegate liveness adopt {model.name}'")
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def cmd_liveness_adopt(args: argparse.Namespace) -> int:
    from facegate.liveness import adopt

    record = adopt(config_from_args(args), args.name)
    emit(args, record.to_dict(), f"liveness head {record.name} ({record.kind}) in force since {record.adopted}")
    return 0


def cmd_liveness_revert(args: argparse.Namespace) -> int:
    from facegate.liveness import revert

    record = revert(config_from_args(args))
    emit(args, record.to_dict(), f"reverted: liveness head {record.name} ({record.kind}) in force again")
    return 0


def status(config: Any) -> dict[str, Any]:
    """The head in force (and whether this config may use it), the kept site heads, the history."""
    from facegate.errors import FacegateError
    from facegate.liveness import history, in_force, load_liveness, site_models

    record = in_force(config)
    try:
        load_liveness(None, config)
        usable, why = True, None
    except FacegateError as exc:
        usable, why = False, str(exc)
    return {"in_force": record.to_dict(), "usable": usable, "message": why,
            "site_heads": [{"name": m.name, "sha256": m.sha256, "path": m.path, "source": m.source,
                            "training_data": m.training_data} for m in site_models(config)],
            "history": [r.to_dict() for r in history(config)]}


def cmd_liveness_status(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    s = status(config)

    def text() -> str:
        r = s["in_force"]
        since = f", adopted {r['adopted']} by {r['by']}" if r["adopted"] else " (the default)"
        lines = [f"in force: {r['name']} ({r['kind']}{since}), sha256 {r['sha256'][:16]}..."]
        if not s["usable"]:
            lines.append(f"  NOT usable here: {s['message']}")
        for h in s["site_heads"]:
            lines.append(f"site head {h['name']}: {h['training_data']} ({h['path']})")
        if s["history"]:
            lines.append("earlier (revert goes back to the last): " + ", ".join(h["name"] for h in s["history"]))
        return "\n".join(lines)

    emit(args, s, text)
    return 0 if s["usable"] else 6


# -- facegate gate ---------------------------------------------------------------------------------------


def cmd_gate_set(args: argparse.Namespace) -> int:
    from facegate.service import gates

    db = _service_db(args)
    try:
        g = gates.set_liveness(db, args.gate, args.liveness, client="cli")
    finally:
        db.close()
    note = " (the gate now opens for a photo of an enrolled person)" if args.liveness == "off" else ""
    emit(args, g.to_dict(), f"gate {g.gate}: liveness {g.liveness}{note}")
    return 0


def cmd_gate_show(args: argparse.Namespace) -> int:
    from facegate.liveness import DEFAULT_GATE_MODE
    from facegate.service import gates

    db = _service_db(args)
    try:
        rows = [gates.get(db, args.gate)] if args.gate else gates.all_stored(db)
    finally:
        db.close()
    payload = {"default_liveness": DEFAULT_GATE_MODE, "gates": [g.to_dict() for g in rows]}

    def text() -> str:
        lines = [f"gate {g.gate}: liveness {g.liveness}{' (default)' if not g.stored else ''}" for g in rows]
        if not args.gate:
            lines.append(f"every other gate: liveness {DEFAULT_GATE_MODE} (the default)")
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


# -- facegate eval pad ---------------------------------------------------------------------------------


def cmd_eval_pad(args: argparse.Namespace) -> int:
    from facegate.evaluate import pad
    from facegate.liveness import load_liveness

    config = config_from_args(args)
    root: Path = args.dir
    scoring = pad.Scoring(perturbation=pad.Perturbation(args.blur_live, args.sharpen_attack),
                          bursts=tuple(args.burst or (3, 5)), cache=args.cache, bootstrap=args.bootstrap, plot=args.plot,
                          progress=not getattr(args, "json", False), config=config)
    nuaa = (root / "real").is_dir() and (root / "attack").is_dir()
    if args.fit_session is not None:
        if not nuaa:
            raise DatasetError(f"{root}: --fit-session needs the nuaa_dev layout (real/<person>/, attack/<person>/)")
        if args.model:
            raise UsageError("--model scores a fitted model; --fit-session fits the recipe: give one of them")
        score = args.score_session or {"1": "2", "2": "1"}.get(str(args.fit_session), "2")
        recipe = pad.Recipe(
            still_cues=pad.parse_cues(args.still_cues, pad.STILL_HEAD_CUES),
            burst_cues=pad.parse_cues(args.burst_cues, pad.BURST_HEAD_CUES),
            gap=None if args.gap.lower() == "none" else _gap(args.gap),
        )
        res = pad.nuaa_protocol(root, str(args.fit_session), str(score), recipe, scoring, cue_rows=args.cue_table)
    else:
        if nuaa:
            samples = pad.nuaa_samples(root)
            if args.score_session is not None:
                samples = [s for s in samples if s.session == str(args.score_session)]
                if not samples:
                    raise DatasetError(f"{root}: no session {args.score_session}")
            label = f"{root.name}" + (f" session {args.score_session}" if args.score_session else "")
        elif (root / "live").is_dir() and (root / "attack").is_dir():
            samples = pad.folder_samples(root / "live", root / "attack")
            label = root.name
        else:
            raise DatasetError(f"{root}: expected live/ and attack/ folders of captures (or the nuaa_dev layout)")
        det = load_liveness(args.model, config) if args.model else load_liveness(None, config)
        res = pad.score_model(samples, det.model, f"{label}, scored by {det.model.name}", scoring)
    text = pad.format_results([res]) + (f"\nDET plot: {args.plot}" if args.plot else "")
    emit(args, res, text)
    return 0


def _gap(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 < v < 1.0:
        raise UsageError(f"--gap {text!r}: a share between 0 and 1 (0.6 is the shipped rule), or 'none'")
    return v


# -- facegate models: the liveness rows ------------------------------------------------------------------


def model_rows(rows: list[dict[str, Any]], config: Any) -> list[dict[str, Any]]:
    """``facegate models`` rows with the liveness details added: each head's operating points and
    training data, which head is in force, and the site's own heads (kept in ``<home>/liveness``)."""
    from facegate.errors import FacegateError
    from facegate.liveness import SHIPPED, in_force, load_model, site_models
    from facegate.models.registry import locate

    try:
        current = in_force(config)
    except FacegateError:
        current = None
    out = []
    for r in rows:
        if r.get("task") != "liveness":
            out.append(r)
            continue
        try:
            extra = _liveness_extra(load_model(locate(SHIPPED[r["name"]]), expect_sha256=r["sha256"]))
        except (FacegateError, KeyError):  # the check column already says what is wrong with the file
            extra = {}
        out.append({**r, **extra, "in_force": current is not None and current.kind == "shipped" and current.name == r["name"],
                    "usable_here": bool(r["permissive"]) or config.licence_policy != "permissive"})
    for m in site_models(config):
        in_force_now = current is not None and current.kind == "site" and current.name == m.name
        check = "ok"
        if in_force_now and current is not None and current.sha256 != m.sha256:
            check = "MISMATCH"
        out.append({
            "name": m.name, "task": "liveness", "package": "site (fitted here)", "module": "", "file": m.path,
            "sha256": current.sha256 if in_force_now and current is not None else m.sha256, "sha256_actual": m.sha256,
            "check": check, "licence": m.licence, "source": m.source, "provenance": m.provenance,
            "permissive": m.permissive, "input_size": None, "output_size": None, "archive": "", "scheme": None,
            "operating_points": {}, "in_force": in_force_now, "usable_here": True, **_liveness_extra(m),
        })
    return out


def _liveness_extra(m: Any) -> dict[str, Any]:
    heads = {}
    for mode, h in m.heads.items():
        op = h.operating_point
        heads[mode] = {"cues": list(h.cues), "threshold": round(h.threshold, 6), "apcer": op.apcer, "bpcer": op.bpcer,
                       "apcer_interval": op.apcer_interval, "bpcer_interval": op.bpcer_interval,
                       "measured_on": op.measured_on}
    return {"training_data": m.training_data, "liveness_heads": heads, "numbers": m.size}


def model_lines(r: dict[str, Any]) -> list[str]:
    """The extra lines ``facegate models`` prints for a liveness row."""
    if r.get("task") != "liveness":
        return []
    lines = [f"    in force {'YES' if r.get('in_force') else 'no'}"]
    if r.get("in_force") and not r.get("usable_here", True):
        lines[0] += (", but the permissive licence policy excludes it: gates with liveness on stay closed "
                     "(liveness_unavailable) until a site head is adopted ('facegate liveness fit ... --adopt')")
    if r.get("training_data"):
        lines.append(f"    trained  {r['training_data']}")
    for mode, h in (r.get("liveness_heads") or {}).items():
        lines.append(f"    {mode:<8} {'+'.join(h['cues'])}: threshold {h['threshold']:.4f}, APCER {_pct(h['apcer'])}, "
                     f"BPCER {_pct(h['bpcer'])}")
        lines.append(f"             measured on {h['measured_on']}")
    return lines


__all__ = ["PhotosOrCommand", "model_lines", "model_rows", "register", "status"]

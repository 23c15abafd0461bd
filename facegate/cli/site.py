"""``facegate calibrate``: thresholds from a labelled folder (``calibrate DIR``), or the site's own
operating points from what the site already has (``calibrate --site``: its gallery, strangers, a
labelled folder), adopted, shown and reverted; and ``facegate eval far``. Thin wrappers over
:mod:`facegate.calibrate` and :mod:`facegate.evaluate.far`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facegate.cli.args import int_arg, name_arg, rate_arg, text_arg
from facegate.cli.common import config_from_args, emit, error_payload
from facegate.cli.core import cmd_calibrate_folder, fpir_arg
from facegate.cli.gallery import gallery_options
from facegate.errors import UsageError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``calibrate`` (both forms) and ``eval far`` (under the ``eval`` command :mod:`facegate.cli.core` registers)."""
    evaluate = sub.choices.get("eval")
    if evaluate is not None:
        esub = next(a for a in evaluate._actions if isinstance(a, argparse._SubParsersAction))
        register_eval_far(esub, common)
    p = sub.add_parser(
        "calibrate", parents=[common, gallery_options()],
        help="thresholds from your labelled photos, or your site's own (--site)",
        description="DIR: one sub-folder per person; the FAR / threshold / TAR table of their photos is printed. "
        "--site: the site's own operating points from its gallery (and strangers, a labelled folder), beside "
        "the shipped ones; --adopt puts them in force for verify, identify, the gate and watch.",
        example="facegate calibrate --site --strangers door_captures/ --plot site.png --adopt",
        epilog="DIR: photos without a face are skipped and counted; with too few people for a FAR, the answer says how "
        "many\nphotos or people it would need.\n\n--site: every pair of photos of two enrolled people is an impostor "
        "pair (30 people give 435); the\nsite's impostor scores are modelled as the shipped (LFW) ones moved and scaled. "
        "An estimate from too few\npeople or pairs is UNRELIABLE and --adopt refuses it (exit 8) unless --force. Every "
        "adoption and revert is\nrecorded (who, when, thresholds before and after) in <home>/site_tables.json; --show "
        "prints it.\n\nexamples:\n  facegate calibrate my_people/ --write ~/.cache/facegate/operating_points.json\n"
        "  facegate calibrate --site                          estimate from the gallery, adopt nothing\n"
        "  facegate calibrate --site --labelled staff/ --adopt --by ada\n"
        "  facegate calibrate --site --revert                 back to the table before",
    )
    p.add_argument("dir", type=Path, nargs="?", metavar="DIR", help="one sub-folder per person (without --site)")
    p.add_argument("--site", action="store_true", help="estimate the site's own operating points; from the gallery")
    p.add_argument("--strangers", type=Path, metavar="DIR", help="--site: photos of nobody enrolled; gate captures")
    p.add_argument("--labelled", type=Path, metavar="DIR", help="--site: a labelled folder, DIR/<person>/<photos>")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="--site: write the score-histogram plot")
    p.add_argument("--adopt", action="store_true", help="--site: put the estimate in force; refused if unreliable")
    p.add_argument("--force", action="store_true", help="--adopt: an unreliable estimate too; recorded as forced")
    p.add_argument("--revert", action="store_true", help="--site: take the adopted table out of force")
    p.add_argument("--show", action="store_true", help="--site: the table in force, last estimate and audit log")
    m = p.add_argument_group("more options")
    m.add_argument("--by", type=text_arg(200, "a name"), help="--site: who adopts or reverts (default: the OS user)")
    m.add_argument("--pick", choices=["single", "largest", "center"], default="largest",
                   help="which face in photos with several (default largest); use center for LFW")
    m.add_argument("--name", type=name_arg, help="DIR: name of the data set recorded beside the thresholds")
    m.add_argument("--write", type=Path, metavar="TABLE.json",
                   help="DIR: merge the result into an operating-point table; <home>/operating_points.json is used "
                   "by facegate, facegate/data/operating_points.json is the shipped one")
    p.set_defaults(func=cmd_calibrate)


def register_eval_far(esub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from facegate.evaluate.far import LAYOUTS

    e = esub.add_parser(
        "far", parents=[common],
        help="are the stated error rates true on this data? FAR, and FPIR in open-set splits",
        description="On a labelled folder (DIR/<person>/<photos>): the measured FAR at each stated operating point of "
        "the table in force (shipped or adopted site table), and with --enrol the strangers named against the "
        "stated FPIR in open-set splits.",
        example="facegate eval far staff/ --enrol 1 --strangers 0.3 --splits 20",
        epilog="Every cross-identity pair is an impostor pair; a FAR is 'resolved' when at least 10 false accepts "
        "are\nexpected at it. The open-set split holds out a share of the people as strangers, enrols K photos of "
        "each\nother person (a mean template) and probes with everything else.",
    )
    e.add_argument("dir", type=Path, metavar="DIR", help="labelled photos, one sub-folder per person")
    e.add_argument("--enrol", type=int_arg(0, 1000), default=0, metavar="K",
                   help="open-set split: photos enrolled per person; 0: none")
    e.add_argument("--strangers", type=rate_arg("share of people", "0.3"), default=0.3, metavar="SHARE",
                   help="share of people held out (default 0.3)")
    e.add_argument("--splits", type=int_arg(1, 10_000), default=10, metavar="N", help="random splits (default 10)")
    e.add_argument("--table", choices=("in-force", "shipped"), default="in-force", metavar="TABLE",
                   help="in-force (default) or shipped; the shipped one is the table beneath an adopted site table")
    m = e.add_argument_group("more options")
    m.add_argument("--fpir", type=fpir_arg, default=1e-2, help="the FPIR identification is stated at (default 1e-2)")
    m.add_argument("--layout", choices=LAYOUTS, default="folders", help="folders (DIR/<person>/*) or cfp (CFP's layout)")
    m.add_argument("--views", default="frontal", help="cfp layout: frontal, profile or frontal+profile")
    m.add_argument("--pick", choices=("largest", "center"), default="largest", help="the face of a photo with several")
    m.add_argument("--all-points", action="store_true", help="every point of the table, not only the decades")
    m.add_argument("--site-gallery", type=int_arg(0, 100_000), default=0, metavar="N",
                   help="simulate site calibration from galleries of N people, measured on the others")
    m.add_argument("--site-photos", default="1-3", metavar="MIN-MAX", help="photos per simulated gallery person")
    m.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0, help="seed of the random splits")
    e.set_defaults(func=cmd_eval_far)


# -- handlers ----------------------------------------------------------------------------------------------
def cmd_calibrate(args: argparse.Namespace) -> int:
    site_only = [o for o, v in (("--strangers", args.strangers), ("--labelled", args.labelled), ("--plot", args.plot),
                                ("--adopt", args.adopt), ("--revert", args.revert), ("--show", args.show),
                                ("--force", args.force), ("--by", args.by)) if v]
    if not args.site:
        if site_only:
            raise UsageError(f"{site_only[0]} goes with --site (facegate calibrate --site {site_only[0]} ...)")
        if args.dir is None:
            raise UsageError("give a labelled folder DIR (one sub-folder per person), or --site to calibrate the site")
        return cmd_calibrate_folder(args)
    if args.dir is not None:
        raise UsageError(f"with --site a labelled folder is given as --labelled {args.dir}")
    if args.write or args.name:
        raise UsageError("--write and --name go with 'facegate calibrate DIR'; a site table is kept in <home>")
    if args.force and not args.adopt:
        raise UsageError("--force goes with --adopt (it adopts an estimate the trust rule calls unreliable)")
    modes = [o for o, v in (("--adopt", args.adopt), ("--revert", args.revert), ("--show", args.show)) if v]
    if len(modes) > 1:
        raise UsageError(f"{modes[0]} and {modes[1]} cannot go together")
    if args.revert:
        return _revert(args)
    if args.show:
        return _show(args)
    return _estimate(args)


def _by(args: argparse.Namespace) -> str:
    from facegate.calibrate.status import operator

    return args.by or operator()


def _config(args: argparse.Namespace) -> Any:
    over = {k: getattr(args, k) for k in ("backend", "milvus_uri", "index", "ann_threshold") if getattr(args, k, None) is not None}
    return config_from_args(args, **over)


def _event_lines(e: dict[str, Any]) -> list[str]:
    thr = lambda side: ", ".join(f"{f} {t:.4f}" for f, t in e[side]["thresholds"].items())  # noqa: E731
    forced = " (FORCED: " + "; ".join(e["reasons"]) + ")" if e["forced"] else ""
    return [f"{e['when']}  {e['action']} by {e['by']}{forced}",
            f"    before: {e['before']['table']}  [{thr('before')}]", f"    after:  {e['after']['table']}  [{thr('after')}]"]


def _estimate(args: argparse.Namespace) -> int:
    from facegate.calibrate import UnreliableEstimateError, adopt, calibrate_gallery, embed_folder, save_estimate
    from facegate.calibrate.plot import plot_site
    from facegate.calibrate.stats import load_shipped_stats
    from facegate.decide.site import store_path
    from facegate.decide.tables import in_force
    from facegate.files import create_private
    from facegate.gallery import open_gallery
    from facegate.pipeline import Pipeline

    config = _config(args)
    pipe = Pipeline(config)
    progress = not getattr(args, "json", False)
    before = in_force(config)
    sources: dict[str, Any] = {"gallery": str(config.gallery_path) if config.backend == "sqlite" else config.backend}
    strangers = labelled = None
    skipped: dict[str, int] = {}
    if args.strangers is not None:
        f = embed_folder(pipe, args.strangers, pick=args.pick, progress=progress)
        strangers, sources["strangers"], skipped["strangers"] = f.embeddings, str(args.strangers), len(f.skipped)
    if args.labelled is not None:
        f = embed_folder(pipe, args.labelled, labelled=True, pick=args.pick, progress=progress)
        labelled, sources["labelled"], skipped["labelled"] = (f.embeddings, f.labels), str(args.labelled), len(f.skipped)
    with open_gallery(config, rule=getattr(args, "rule", None)) as g:
        table, pairs = calibrate_gallery(pipe, g, strangers=strangers, labelled=labelled, sources=sources, by=_by(args))
    store = store_path(config)
    save_estimate(store, table)
    out: dict[str, Any] = {"estimate": table.to_dict(), "rows": table.rows(), "in_force_before": before.describe(),
                           "photos_without_a_face": skipped, "store": str(store)}
    lines = [table.describe(), f"table in force: {before.label}"]
    if args.plot is not None:
        stats = load_shipped_stats(table.stack)
        assert stats is not None  # calibrate_site refused a stack without them
        beneath = in_force(config, site=False)
        try:
            create_private(args.plot)
            plot_site(args.plot, pairs, stats, list(beneath.operating_points), table, title=f"site calibration of {table.created}")
        except (OSError, ValueError) as exc:
            raise UsageError(f"--plot {args.plot}: cannot write ({exc}); use a .png path in a writable folder") from exc
        out["plot"] = str(args.plot.resolve())
        lines.append(f"plot: {out['plot']}")
    if skipped and any(skipped.values()):
        lines.append("photos without a face (left out): " + ", ".join(f"{k} {v}" for k, v in skipped.items() if v))
    if args.adopt:
        try:
            event = adopt(store, table, by=_by(args), force=args.force, shipped_points=in_force(config, site=False).operating_points)
        except UnreliableEstimateError as exc:
            payload = {**error_payload(exc.code, exc.exit_code, str(exc)), **out, "adopted": False, "reasons": exc.reasons}
            lines.append(f"NOT ADOPTED: {exc}\n  adopt anyway with --adopt --force (recorded as forced), or enrol more people")
            emit(args, payload, "\n".join(lines))
            return int(exc.exit_code)
        out["adopted"] = True
        out["event"] = event.to_dict()
        lines += [f"adopted: verify, identify, the gate and watch now apply the site table of {table.created}"
                  + (" (FORCED although unreliable)" if event.forced else ""), *_event_lines(event.to_dict()),
                  "undo with: facegate calibrate --site --revert"]
    else:
        out["adopted"] = False
        lines.append("not adopted (estimate kept); put it in force with: facegate calibrate --site --adopt")
    emit(args, out, "\n".join(lines))
    return 0


def _revert(args: argparse.Namespace) -> int:
    from facegate.calibrate import revert
    from facegate.decide.site import store_path
    from facegate.decide.tables import in_force

    config = _config(args)
    stack = in_force(config, site=False)
    event = revert(store_path(config), stack.key, by=_by(args), shipped_points=stack.operating_points)
    now = in_force(config)
    emit(args, {"event": event.to_dict(), "in_force": now.describe()},
         "\n".join(["reverted:", *_event_lines(event.to_dict()), f"table in force: {now.label}"]))
    return 0


def _show(args: argparse.Namespace) -> int:
    from facegate.calibrate import audit_log, last_estimate, table_in_force
    from facegate.decide.site import store_path
    from facegate.decide.tables import in_force

    config = _config(args)
    tables = in_force(config)
    store = store_path(config)
    current = table_in_force(store, tables.key)
    estimate = last_estimate(store, tables.key)
    log = [e.to_dict() for e in audit_log(store, tables.key)]
    payload = {"stack": tables.key, "in_force": tables.describe(), "site_table": current.to_dict() if current else None,
               "last_estimate": estimate.to_dict() if estimate else None, "log": log, "store": str(store)}

    def text() -> str:
        lines = [f"table in force for {tables.key}: {tables.label or 'none'}"]
        if current is not None:
            lines.append(current.describe())
        if estimate is not None and (current is None or estimate.created != current.created):
            lines += ["last estimate (not in force):", estimate.describe()]
        lines.append(f"audit log ({store}):" if log else "audit log: nothing adopted or reverted yet")
        for e in log:
            lines += _event_lines(e)
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def cmd_eval_far(args: argparse.Namespace) -> int:
    from facegate.evaluate.far import format_report, measure, photos_range
    from facegate.pipeline import Pipeline

    if args.enrol == 0 and args.site_gallery == 0 and args.splits != 10:
        raise UsageError("--splits goes with --enrol K or --site-gallery N (the open-set or the site protocol)")
    out = measure(Pipeline(config_from_args(args)), args.dir, layout=args.layout, views=args.views, pick=args.pick,
                  table=[args.table], all_points=args.all_points, enrol=args.enrol, strangers=args.strangers,
                  splits=args.splits, fpir=args.fpir, site_gallery=args.site_gallery,
                  site_photos=photos_range(args.site_photos), seed=args.seed, progress=not getattr(args, "json", False))
    emit(args, out, lambda: format_report(out))
    return 0


__all__ = ["cmd_calibrate", "cmd_eval_far", "register", "register_eval_far"]

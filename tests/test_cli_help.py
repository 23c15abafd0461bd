"""Help for the command at hand (issue 23): every command's --help shows its purpose, its own options and one
example in under 25 lines (at 80 columns); the pipeline options stay available (--help-all, 'facegate help
pipeline') and still work as options; 'facegate --help' lists the commands and the exit codes. And every number
and name the CLI takes is checked where it is typed: a usage exit, never an internal error (exit 9)."""

from __future__ import annotations

import argparse
import json

import pytest

from facegate.cli import build_parser, common_options, main
from facegate.errors import EXIT_CODES


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(((*path, name), sub))
                out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(build_parser())
PIPELINE_OPTIONS = [a.option_strings[-1] for a in common_options()._actions if a.option_strings]


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"verify", "enroll", "identify", "watch", "serve", "people list", "access allow", "help"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p))
def test_help_is_short_with_an_example_and_points_to_the_rest(path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) < 25, out
    assert max(len(line) for line in lines) <= 80, out
    assert lines[0].startswith(f"usage: facegate {' '.join(path)}")
    assert "example:" in out or "examples:" in out
    assert "facegate" in out.split("example", 1)[1]  # the example is a command line
    assert "--help-all" in out
    assert "--detector" not in out.split("more:")[0]  # the pipeline options are not repeated here


@pytest.mark.parametrize("path", [("verify",), ("enroll",), ("watch",), ("people", "show")], ids=" ".join)
def test_help_all_still_lists_the_pipeline_options(path, capsys):
    with pytest.raises(SystemExit):
        main([*path, "--help-all"])
    out = capsys.readouterr().out
    for option in PIPELINE_OPTIONS:
        assert option in out


def test_help_pipeline_lists_every_shared_option(capsys):
    assert main(["help", "pipeline"]) == 0
    out = capsys.readouterr().out
    assert len(PIPELINE_OPTIONS) >= 14
    for option in [*PIPELINE_OPTIONS, "--backend", "--milvus-uri", "--service-db"]:
        assert option in out
    assert main(["help", "people", "list"]) == 0
    assert "--limit" in capsys.readouterr().out
    assert main(["help", "nonsense"]) == 2


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert f"  {path[0]} " in out
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code):<3} {meaning}" in out


def test_pipeline_options_are_still_accepted_before_and_after_the_command():
    parser = build_parser()
    after = parser.parse_args(["verify", "a.jpg", "b.jpg", "--detector", "mtcnn", "--embedder", "dlib_resnet",
                               "--device", "cpu", "--runtime", "onnxruntime", "--licence-policy", "permissive",
                               "--batch-size", "8", "--threads", "2", "--home", "/tmp/h", "--gallery", "/tmp/g",
                               "--no-flip", "--no-refine", "--min-score", "0.5", "--detect-budget", "16", "--fp16"])
    assert (after.detector, after.embedder, after.batch_size, after.threads, after.min_score, after.detect_budget) == (
        "mtcnn", "dlib_resnet", 8, 2, 0.5, 16)
    assert after.no_flip and after.no_refine and after.fp16 and after.licence_policy == "permissive"
    before = parser.parse_args(["--detector", "hog", "--threads", "1", "identify", "x.jpg"])
    assert before.detector == "hog" and before.threads == 1


@pytest.mark.parametrize("argv", [
    ["people", "show", "99999999999999999999999"],
    ["people", "list", "--limit", "99999999999999999999999"],
    ["people", "list", "--limit", "0"],
    ["people", "delete", "99999999999999999999999"],
    ["people", "rename", "99999999999999999999999", "x"],
    ["access", "remove", "99999999999999999999999"],
    ["access", "group", "staff", "99999999999999999999999"],
    ["access", "allow", "lab", "--person", "99999999999999999999999"],
    ["access", "allow", "lab", "--person", "1", "--tz", "Mars/Olympus"],
    ["identify", "x.jpg", "-k", "99999999999999999999999"],
    ["--batch-size", "0", "demo"],
    ["--threads", "-1", "demo"],
    ["verify", "a.jpg", "b.jpg", "--threshold", "nan"],
    ["serve", "--port", "70000"],
    ["watch", "x.mp4", "--max-frames", "99999999999999999999999"],
    ["enroll", "--name", "x\udced\udca0\udc80", "a.jpg"],  # argv bytes that are not UTF-8
    ["enroll", "--name", "bad\x00name", "a.jpg"],
    ["people", "rename", "1", "x\udcff"],
])
def test_numbers_and_names_are_checked_where_they_are_typed(argv, tmp_path, capsys):
    code = main(["--home", str(tmp_path), *argv, "--json"])
    out = capsys.readouterr().out
    assert code == 2, out
    assert json.loads(out)["error"]["code"] == "usage"


def test_a_file_name_that_is_not_utf8_is_a_usage_error_not_an_internal_one(tmp_path, hopper_path, capsys):
    odd = tmp_path / "a\udcff.jpg"  # the file name's byte 0xff, as Python hands it over from argv
    odd.write_bytes(hopper_path.read_bytes())
    code = main(["--home", str(tmp_path / "home"), "enroll", "--name", "Grace", str(odd), "--json"])
    out = capsys.readouterr().out
    assert code in (0, 2), out  # stored, or refused as usage: never exit 9
    if code == 2:
        assert "not valid UTF-8" in json.loads(out)["error"]["message"]


def test_json_times_are_iso_8601_with_offset(tmp_path, capsys):
    from datetime import datetime

    from facegate.cli import iso_times

    assert main(["--home", str(tmp_path), "keys", "create", "--role", "viewer", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)["created"]
    assert datetime.fromisoformat(created).utcoffset() is not None
    assert main(["--home", str(tmp_path), "access", "allow", "lab", "--group", "nobody-yet", "--json"]) == 11  # not found
    capsys.readouterr()
    out = iso_times({"created": True, "person": {"created": 0.0, "updated": None}, "faces": 3})
    assert out["created"] is True and out["faces"] == 3 and out["person"]["updated"] is None
    assert datetime.fromisoformat(out["person"]["created"]).timestamp() == 0.0


def test_access_rule_hours_default_to_the_site_time_zone_and_say_so(tmp_path, capsys, monkeypatch):
    from facegate.config import machine_time_zone

    monkeypatch.setenv("TZ", "Europe/Paris")
    assert machine_time_zone() == "Europe/Paris"
    base = ["--home", str(tmp_path)]
    db = tmp_path / "gallery.service.sqlite"
    from facegate.service import access
    from facegate.service.db import ServiceDB

    sdb = ServiceDB(db)
    try:
        access.add_members(sdb, "staff", [7])
        rule = access.add_rule(sdb, "lab", group="staff", days="mon-fri", start="08:00", end="18:00")
        assert rule.tz == "Europe/Paris" and rule.window().endswith("08:00-18:00 Europe/Paris")
        site = access.add_rule(sdb, "lab", group="staff", start="08:00", end="18:00", site_tz="America/New_York")
        assert site.tz == "America/New_York"
        from datetime import UTC, datetime

        mon_9_paris = datetime(2026, 12, 14, 8, 0, tzinfo=UTC).timestamp()  # a Monday: 09:00 in Paris
        assert rule.in_window(mon_9_paris) and not site.in_window(mon_9_paris)  # 03:00 in New York
    finally:
        sdb.close()
    assert main([*base, "access", "list", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    assert [r["tz"] for r in rules] == ["Europe/Paris", "America/New_York"]
    assert all(r["window"].split()[-1] == r["tz"] for r in rules)

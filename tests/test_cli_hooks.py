"""``facegate hooks``: configuration checks at the command line, secrets in and never out, audit, test
delivery to a real receiver on loopback."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

from hook_receiver import Receiver

SECRET = "cli-secret-0123456789abcdef"


def test_hooks_cli_checks_stores_tests_and_audits(run, tmp_path, monkeypatch):
    g = ["--gallery", str(tmp_path / "g.sqlite")]
    code, out, err = run(*g, "hooks", "add", "door", "http://127.0.0.1:9/hook")
    assert code == 2 and "refusing 127.0.0.1" in err and "--allow-private" in err
    code, out, err = run(*g, "--json", "hooks", "add", "door", "ftp://x/y")
    assert code == 2 and json.loads(out)["error"]["code"] == "hook" and "unsupported URL scheme" in err
    code, out, err = run(*g, "hooks", "add", "door", "http://127.0.0.1:9/h", "--allow-private", "--secret-env", "NOPE_VAR")
    assert code == 2 and "NOPE_VAR is not set" in err

    rx = Receiver(SECRET).start()
    try:
        monkeypatch.setenv("DOOR_SECRET", SECRET)
        code, out, err = run(*g, "--json", "hooks", "add", "door", rx.url, "--allow-private", "--secret-env", "DOOR_SECRET",
                             "--gate", "front", "--template", '{"text": "{name} at {gate}: {decision}"}')
        assert code == 0, err
        added = json.loads(out)
        assert added["secret"] is None and SECRET not in out and added["gates"] == ["front"] and added["template"] is True
        code, out, err = run(*g, "hooks", "add", "spare", "http://127.0.0.1:9/x", "--allow-private")
        assert code == 0 and "signing secret (shown only now" in out
        generated = out.strip().rsplit(" ", 1)[1]
        assert generated.startswith("whsec_")
        code, out, err = run(*g, "--json", "hooks", "list")
        assert code == 0 and {t["name"] for t in json.loads(out)["targets"]} == {"door", "spare"}
        assert SECRET not in out and generated not in out
        code, out, err = run(*g, "hooks", "test", "door")
        assert code == 0 and "delivered" in out, err
        got = rx.wait_for(1)
        assert got[0]["valid"] and got[0]["json"]["text"] == " at : "  # a test event has no person or gate
        assert got[0]["headers"]["X-Facegate-Event"] == "hook.test"
        code, out, err = run(*g, "hooks", "test", "spare")
        assert code == 1 and "not delivered" in out
        code, out, err = run(*g, "hooks", "dead-letters")
        assert code == 0 and "no dead letters" in out
        code, out, err = run(*g, "hooks", "remove", "spare")
        assert code == 0
        code, out, err = run(*g, "hooks", "remove", "spare")
        assert code == 2 and "no hook target named 'spare'" in err
    finally:
        rx.stop()
    db = tmp_path / "g.service.sqlite"
    assert stat.S_IMODE(os.stat(db).st_mode) & 0o077 == 0
    with sqlite3.connect(db) as c:
        audit = c.execute("SELECT action, client, detail FROM events WHERE kind = 'audit' ORDER BY id").fetchall()
    assert [a for a, _, _ in audit] == ["hook_add", "hook_add", "hook_test", "hook_test", "hook_remove"]
    assert all(cl == "cli" for _, cl, _ in audit)
    assert SECRET not in json.dumps(audit) and generated not in json.dumps(audit)

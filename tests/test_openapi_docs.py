"""The REST API documents itself (issue 23): every field of every request and response body in /openapi.json
has a description and an example (a file part, which has no text example, shows the curl form instead), and
ids past 64 bits in a body are a 422, not a 500."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict[str, Any]:
    from facegate import Config
    from facegate.service import create_app
    from facegate.service.settings import ServiceSettings

    app = create_app(Config(home=tmp_path_factory.mktemp("home")), ServiceSettings(warmup=False))
    try:
        return app.openapi()
    finally:
        app.state.svc.close()


def _undocumented(where: str, schema: dict[str, Any]) -> list[str]:
    out = []
    for name, prop in schema.get("properties", {}).items():
        if "description" not in prop:
            out.append(f"{where}.{name}: no description")
        binary = prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary"
        if binary:
            if "curl -F" not in prop.get("description", ""):
                out.append(f"{where}.{name}: a file part without the curl form")
        elif "examples" not in prop and "example" not in prop:
            out.append(f"{where}.{name}: no example")
    return out


# The integrations' routes document their own models: the CompreFace-compatible API follows CompreFace's (and
# its error model), the hooks their own; this test covers facegate's API (the models of service/schemas.py and
# the image bodies of its routes).
OTHER_APIS = ("/api/v1/recognition", "/api/v1/detection", "/api/v1/verification", "/api/v1/hooks")


def test_every_body_field_has_a_description_and_an_example(spec):
    from pydantic import BaseModel

    from facegate.service import schemas

    ours = {n for n, v in vars(schemas).items() if isinstance(v, type) and issubclass(v, BaseModel) and v is not BaseModel}
    missing = []
    for name, schema in spec["components"]["schemas"].items():
        if name in ours:
            missing += _undocumented(name, schema)
    assert len(ours & set(spec["components"]["schemas"])) >= 30
    bodies = 0
    for path, ops in spec["paths"].items():
        if path.startswith(OTHER_APIS):
            continue
        for method, op in ops.items():
            for ctype, content in op.get("requestBody", {}).get("content", {}).items():
                bodies += 1
                missing += _undocumented(f"{method.upper()} {path} ({ctype})", content["schema"])
    assert bodies >= 10
    assert missing == []


def test_base64_image_fields_are_named_and_described(spec):
    body = spec["paths"]["/api/v1/verify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"image1_base64", "image2_base64"}
    assert "base64" in body["properties"]["image1_base64"]["description"]
    enrol = spec["paths"]["/api/v1/people"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(enrol["required"]) == {"images_base64", "name"}


def test_ids_past_64_bits_in_a_body_are_refused():
    from pydantic import ValidationError

    from facegate.service.schemas import AccessRuleIn, GroupMembersIn

    with pytest.raises(ValidationError):
        GroupMembersIn(person_ids=[9223372036854775808])
    with pytest.raises(ValidationError):
        AccessRuleIn(gate="lab", person_id=2**64)
    assert GroupMembersIn(person_ids=[7, 9]).person_ids == [7, 9]


def test_a_name_or_id_past_64_bits_is_not_found_not_a_server_error(tmp_path):
    """A person asked for by a number no SQLite id can hold (a CompreFace subject, a CLI argument): not found,
    never an OverflowError from the driver (found by fuzzing DELETE /api/v1/recognition/faces?subject=2**63)."""
    from facegate import Config
    from facegate.gallery import open_gallery
    from facegate.gallery.errors import PersonNotFoundError

    with open_gallery(Config(home=tmp_path)) as g:
        for ref in ("9223372036854775808", 2**63, "99999999999999999999999"):
            with pytest.raises(PersonNotFoundError):
                g.person(ref)

"""The service's routes, one module per resource (one OpenAPI tag each), in the order
:func:`facegate.service.app.create_app` includes them: :mod:`.system` (health, readiness,
metrics), :mod:`.keys` (whoami, API keys, roles), :mod:`.gates` (the gate check), :mod:`.faces`
(identify, detect, verify), :mod:`.people` (people, their faces, enrolment, gallery stats),
:mod:`.access` (access rules and groups), :mod:`.events` (the audit trail), :mod:`.calibration` (the
site's own operating points: estimate, show, adopt, revert), and, outside the
schema, :mod:`.docs` (``/docs``) and :mod:`.web` (the operator page).
"""

"""The decision layer: the one place where a score becomes a decision.

Everything that turns cosine scores into "same person" / "this is Ada" / "unknown" lives
here, so the gallery, the service, ``watch`` and the gate client cannot disagree:

* :mod:`.scores`: the score (:func:`cosine`) and **the model check** (:func:`check_model`:
  scores across embedding models are meaningless);
* :mod:`.tables`: the calibrated **operating-point tables** of each stack (shipped, overridden by
  the user's own, overridden by the site table adopted for the stack, :mod:`.site`), read here and
  written by :mod:`facegate.evaluate`; :func:`.tables.in_force` is their one reader and says which
  table decides (every answer carries it);
* :mod:`.verification`: **1:1** (:func:`decision_threshold`, :func:`decide`), the calibrated
  per-comparison threshold for ``config.far``, or an explicit threshold;
* :mod:`.curves`: **the calibrated curve** (:class:`FarCurve`, FAR <-> threshold <-> TAR, log-linear
  between calibrated points) and **templates** (:class:`TemplateTable`, :class:`TemplateThreshold`:
  the mean of k photos scores higher against everybody, so the same FAR needs a higher bar);
* :mod:`.identification`: **1:N at a stated FPIR** (:func:`open_set_policy`, the ``mean`` or ``max``
  rule): every identity gets the per-comparison FAR ``FPIR / N`` (union bound), each at the bar of
  its templating, so the threshold rises as people are enrolled and falls as they are deleted;
* :mod:`.enrolment`: **enrolment integrity**, the two rules above applied to a new face (it must not
  identify as another person; added to a person, it must verify against their photos at FAR 1e-3) and to a
  whole gallery (``facegate gallery check``).

This package only re-exports; the rules live in the modules above.
"""

from facegate.decide.curves import FarCurve, TemplatePointLike, TemplateTable, TemplateThreshold, template_threshold
from facegate.decide.enrolment import (
    CONFLICT_FAR,
    CONSISTENCY_FAR,
    agrees_with,
    conflicting_match,
    consistency_threshold,
    disagreeing_pairs,
    enrolment_policy,
    lookalike,
)
from facegate.decide.identification import (
    DEFAULT_FPIR,
    MIN_USABLE_TPIR,
    RULES,
    OpenSetPolicy,
    choose,
    expected_tpir,
    named,
    open_set_policy,
    stack_points,
)
from facegate.decide.scores import check_model, cosine
from facegate.decide.verification import decide, decision_threshold

__all__ = [
    "CONFLICT_FAR", "CONSISTENCY_FAR", "agrees_with", "conflicting_match", "consistency_threshold", "disagreeing_pairs",
    "enrolment_policy", "lookalike",
    "DEFAULT_FPIR", "MIN_USABLE_TPIR", "RULES", "FarCurve", "OpenSetPolicy", "TemplatePointLike", "TemplateTable",
    "TemplateThreshold", "check_model", "choose", "cosine", "decide", "decision_threshold", "expected_tpir", "named",
    "open_set_policy", "stack_points", "template_threshold",
]

"""Site calibration: a stated false-accept rate that stays true at the user's own camera.

The shipped operating points were measured on LFW. At a site (one camera, one light, one kind
of image) the impostor score distribution moves as a whole, and the stated rates stop being
true. This package estimates the site's impostor distribution from what the site already has
and gives the decision layer a site table that states rates that hold there:

* :mod:`.pairs`: the site's impostor pairs (its gallery, strangers, a labelled folder), each
  with the people on its two sides;
* :mod:`.stats`: the body of the shipped impostor distribution (a few LFW-derived numbers per
  stack, ``facegate/data/impostor_stats.json``);
* :mod:`.estimate`: the site model (the shipped distribution moved and scaled), its
  uncertainty from a bootstrap over people, and the trust rule;
* :mod:`.table`: the site table and its record (JSON);
* :mod:`.store`: adopt / revert with an audit log;
* :mod:`.drift`: warnings when the gallery grows or denied checks drift from the table;
* :mod:`.plot`: the score-histogram picture;
* :mod:`.site`: all of it as one call for the front ends (:func:`calibrate_gallery` from an open gallery);
* :mod:`.status`: what every front end shows: the table in force and the drift warnings.

The store itself (``<home>/site_tables.json``) and the table the decision layer reads from it
are :mod:`facegate.decide.site`'s; this package writes it.

Layer: a use case. It imports the decision layer, the gallery's data, the pipeline and the
base types, never ``evaluate``, ``service`` or ``cli``.
"""

from facegate.calibrate.drift import DriftWarning, denied_score_drift, drift_warnings, enrolment_growth
from facegate.calibrate.errors import SiteTableError, UnreliableEstimateError
from facegate.calibrate.estimate import SiteEstimate, estimate_site, trust
from facegate.calibrate.pairs import SitePairs, collect_pairs
from facegate.calibrate.site import calibrate_gallery, calibrate_site, embed_folder, gallery_people
from facegate.calibrate.stats import ImpostorBody, ShippedStats, load_shipped_stats
from facegate.calibrate.status import site_status, status_lines
from facegate.calibrate.store import AdoptionEvent, adopt, audit_log, last_estimate, revert, save_estimate, table_in_force
from facegate.calibrate.table import SitePoint, SiteTable, TemplateSitePoint

__all__ = [
    "AdoptionEvent", "DriftWarning", "ImpostorBody", "ShippedStats", "SiteEstimate", "SitePairs", "SitePoint", "SiteTable",
    "SiteTableError", "TemplateSitePoint", "UnreliableEstimateError", "adopt", "audit_log", "calibrate_gallery",
    "calibrate_site", "collect_pairs", "denied_score_drift", "drift_warnings", "embed_folder", "enrolment_growth",
    "estimate_site", "gallery_people", "last_estimate", "load_shipped_stats", "revert", "save_estimate", "site_status",
    "status_lines", "table_in_force", "trust",
]

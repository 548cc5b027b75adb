"""The vocabularies the rules speak. Plain dicts: the schemas and the docs are checked against them."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "reconcile_required": "the desired state is not met; reconcile it",
    "reconcile_recommended": "something needs a person's attention",
    "reconcile_blocked": "reconciling now would not help; fix the cause first",
}

# The severity a recommendation gets when its rule does not say.
DEFAULT_SEVERITY: dict[str, str] = {
    "reconcile_required": "warning",
    "reconcile_recommended": "info",
    "reconcile_blocked": "critical",
}

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

SUBJECT_KINDS: dict[str, str] = {
    "service": "every service declared in the inventory or present in the world",
    "node": "every node declared in the inventory or present in the world",
    "world": "the world snapshot itself (one subject, id `world`)",
}

CONDITIONS: dict[str, str] = {
    "stale_world": "the world snapshot is older than the allowed age",
    "clock_skew": "a timestamp lies further in the future than the allowed clock skew",
    "offline_node": "a declared node is offline, absent, or silent for too long",
    "missing_service": "a declared service is absent from the world",
    "unhealthy_service": "a declared service reports a status other than ok",
    "failed_deployment": "recent deployments of a service failed",
    "dependency_unavailable": "a service cannot come up because a dependency is unavailable",
    "unresolved_incident": "an incident on a node or service is still open or acknowledged",
    "unmanaged_service": "a service runs that no node declares",
    "failed_remediation": "automatic remediation of a subject failed several times in a row",
    "remediation_in_flight": "a remediation acted on the subject and awaits verification",
}

# What `overrules.subjects` can name, relative to the subject the overruling rule fired on.
OVERRULE_SCOPES: dict[str, str] = {
    "self": "the same subject",
    "hosted_services": "the services on the node the rule fired on (node rules only)",
    "all": "every subject",
}

# From best to worst: the summary is the worst state any recommendation brings.
# `reconciling` ranks above `degraded`: drift is being acted on, which is news until verified,
# and anything blocked or unstable still wins over it.
SUMMARY_STATES: tuple[str, ...] = ("nominal", "degraded", "reconciling", "unstable")

# What a rule's recommendation can do to the summary (the rule's `summary` key): the state it
# brings at least. A recommendation on a critical subject brings `unstable` whatever its rule
# says, since criticality is the inventory's to declare, not the rule's.
RULE_SUMMARIES: dict[str, str] = {
    "degraded": "the homelab drifts; reconciling it is routine",
    "reconciling": "a remediation is in flight: acted on, not yet verified",
    "unstable": "the homelab cannot be relied on until this is dealt with",
}

# The summary a rule's recommendation brings when the rule does not say: SPEC's mapping.
DEFAULT_SUMMARY: dict[str, str] = {
    "reconcile_required": "degraded",
    "reconcile_recommended": "degraded",
    "reconcile_blocked": "unstable",
}

# The ten default rules (rules/default.yaml) translated to Rego, for bench/rego/compare.py.
#
# Why this exists: to compare our compiled JMESPath matchers with a Rego engine (regorus) on the
# same merged documents (supervisor/merge.py, State.document) and an equivalent policy. It is a
# benchmark artefact, not a second rule engine: docs/rules.md and rules/default.yaml stay the
# reference, and compare.py refuses to time anything unless both sides fire the same rules on
# every subject.
#
# Each document `d` is what a matcher sees: `now`, `subject`, `params` (the rules' shared
# params), `world`, and per kind `service`/`node`/`dependencies`/`deployments`/`incidents`.
# Entry points:
#   data.supervisor.fired    the set of rule ids that fire on `input` (one subject per input)
#   data.supervisor.results  one such set per document of `data.subjects`, in the same order
#
# Matching JMESPath (jmespath 1.1.0, as supervisor/compiler.py reproduces it):
# - A missing key is null in JMESPath but undefined in Rego, and `undefined != "ok"` is not
#   true. So a field that may be absent is read with object.get(record, key, null), always on a
#   record known to be an object: those State.document builds (which always have their keys:
#   `service.desired`, `service.actual`, `node.actual`, a dependency's `actual` and `host`, ...)
#   and the observer's records once they are known not to be null (the world schema makes every
#   node, service, deployment and incident record an object, and the loader checks it).
# - JMESPath `>`/`>=` give null (false) unless both sides are numbers (or both strings), while
#   Rego orders across types (`1 > null` is true): `gt`/`ge` check the types first.
# - `age_seconds` and `failed_streak` use the document's `now`. Python's datetime keeps
#   microseconds (digits beyond are truncated), so timestamps are compared in whole microseconds
#   and ages are `microseconds / 1000000`, the same float as timedelta.total_seconds().
# - `a || b || c` is an `else` chain, which, like JMESPath, stops at the first true operand.
package supervisor

# Rule ids per subject kind, in rules/default.yaml order: a rule is only tried on the subjects
# of its kind, as the engine does.
kind_rules := {
	"world": ["world-stale"],
	"node": ["node-offline", "node-incident"],
	"service": [
		"deployment-failures-repeated",
		"dependency-unavailable",
		"deployment-failed",
		"service-missing",
		"service-unhealthy",
		"service-incident",
		"service-unmanaged",
	],
}

fired := matches(input)

results := [matches(d) | some d in data.subjects]

matches(d) := {id | some id in kind_rules[d.subject.kind]; fires(d, id)}

# Helpers -------------------------------------------------------------------------------------

gt(a, b) if {
	is_number(a)
	is_number(b)
	a > b
}

ge(a, b) if {
	is_number(a)
	is_number(b)
	a >= b
}

# An RFC 3339 timestamp in whole microseconds since the epoch, as Python's datetime reads it.
micros(ts) := floor(time.parse_rfc3339_ns(ts) / 1000)

# age_seconds(timestamp): seconds from timestamp to now; undefined (JMESPath: null) for null.
age_seconds(ts, now) := (micros(now) - micros(ts)) / 1000000 if is_string(ts)

# failed_streak(deployments, window_seconds): failures in a row since the last success, latest
# first by (moment, position); running deployments and those after now are skipped; a success
# (any status but failed) or a deployment older than the window ends the streak. Most services
# have no deployment on record: their 0 comes first, without parsing `now` or sorting.
failed_streak(deployments, window, now_text) := 0 if {
	is_number(window)
	count(deployments) == 0
} else := count(eligible) - 1 - last_break if {
	is_number(window)
	now := micros(now_text)
	eligible := sort([[moment, i, status] |
		some i, deployment in deployments
		status := object.get(deployment, "status", null)
		status != "running"
		moment := micros(deployment_time(deployment))
		moment <= now
	])
	breaks := [j |
		some j, entry in eligible
		not in_streak(entry, window, now)
	]
	last_break := max(array.concat([-1], breaks))
}

in_streak(entry, window, now) if {
	entry[2] == "failed"
	(now - entry[0]) / 1000000 <= window
}

# Python's `finished_at or started_at`.
deployment_time(deployment) := finished if {
	finished := object.get(deployment, "finished_at", null)
	is_string(finished)
	finished != ""
} else := object.get(deployment, "started_at", null)

# The rules ------------------------------------------------------------------------------------

# age_seconds(world.observed_at) > params.max_world_age_seconds
fires(d, "world-stale") if {
	d.subject.kind == "world"
	gt(age_seconds(object.get(d.world, "observed_at", null), d.now), d.params.max_world_age_seconds)
}

# node.desired != `null` && (node.actual == `null` || node.actual.status == 'offline'
#   || age_seconds(node.actual.last_seen) > params.node_heartbeat_seconds)
fires(d, "node-offline") if {
	d.subject.kind == "node"
	d.node.desired != null
	node_down(d)
}

node_down(d) if {
	d.node.actual == null
} else if {
	object.get(d.node.actual, "status", null) == "offline"
} else if {
	gt(age_seconds(object.get(d.node.actual, "last_seen", null), d.now), d.params.node_heartbeat_seconds)
}

# failed_streak(deployments, params.deployment_window_seconds)
#   >= params.deployment_failures_to_block
fires(d, "deployment-failures-repeated") if {
	d.subject.kind == "service"
	streak := failed_streak(d.deployments, d.params.deployment_window_seconds, d.now)
	ge(streak, d.params.deployment_failures_to_block)
}

# service.desired != `null` && (service.actual == `null` || service.actual.status != 'ok')
#   && length(attach(dependencies, {heartbeat: params.node_heartbeat_seconds})[?
#        actual == `null` || actual.status != 'ok' || host.actual == `null`
#        || host.actual.status == 'offline'
#        || age_seconds(host.actual.last_seen) > heartbeat]) > `0`
fires(d, "dependency-unavailable") if {
	d.subject.kind == "service"
	d.service.desired != null
	service_down(d.service.actual)
	heartbeat := object.get(d.params, "node_heartbeat_seconds", null)
	count([dependency |
		some dependency in d.dependencies
		dependency != null
		dependency_blocks(dependency, heartbeat, d.now)
	]) > 0
}

service_down(actual) if {
	actual == null
} else if {
	object.get(actual, "status", null) != "ok"
}

# attach() gives every dependency (an object, as State.document builds them) the key
# `heartbeat`, over any of its own: the filter's `heartbeat` is the document's param.
dependency_blocks(dependency, heartbeat, now) if {
	dependency.actual == null
} else if {
	object.get(dependency.actual, "status", null) != "ok"
} else if {
	dependency.host.actual == null
} else if {
	object.get(dependency.host.actual, "status", null) == "offline"
} else if {
	gt(age_seconds(object.get(dependency.host.actual, "last_seen", null), now), heartbeat)
}

# failed_streak(deployments, params.deployment_window_seconds) >= `1`
fires(d, "deployment-failed") if {
	d.subject.kind == "service"
	streak := failed_streak(d.deployments, d.params.deployment_window_seconds, d.now)
	ge(streak, 1)
}

# service.desired != `null` && service.actual == `null`
fires(d, "service-missing") if {
	d.subject.kind == "service"
	d.service.desired != null
	d.service.actual == null
}

# service.desired != `null` && service.actual != `null` && service.actual.status != 'ok'
fires(d, "service-unhealthy") if {
	d.subject.kind == "service"
	d.service.desired != null
	d.service.actual != null
	object.get(d.service.actual, "status", null) != "ok"
}

# incidents[?status != 'resolved'] (a non-empty list is truthy)
fires(d, "service-incident") if {
	d.subject.kind == "service"
	unresolved_incident(d.incidents)
}

# incidents[?status != 'resolved']
fires(d, "node-incident") if {
	d.subject.kind == "node"
	unresolved_incident(d.incidents)
}

unresolved_incident(incidents) if {
	some incident in incidents
	incident != null
	object.get(incident, "status", null) != "resolved"
}

# service.desired == `null` && service.actual != `null`
fires(d, "service-unmanaged") if {
	d.subject.kind == "service"
	d.service.desired == null
	d.service.actual != null
}

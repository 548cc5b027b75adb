"""Remediation: acting on recommendations, by policy, held back by guardrails, and verified.

The engine stays pure; this package is an adapter beside it. `policy` reads what may be done,
`guardrails` and `holds` say what must not be done now, `planner` pairs open recommendations with
policies (pure), the executors (`command`, `docker`, chosen by name in `executor`) act,
`history` replays the event log into attempts, and `cycle` runs one pass of it all.
"""

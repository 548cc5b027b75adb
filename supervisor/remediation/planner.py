"""The plan: which open recommendations a policy remediates, and which guardrail, if any, holds
each action back. Pure: it reads the evaluation, the history and the holds, and returns
decisions; `cycle` logs and carries them out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from jmespath.exceptions import JMESPathError

from supervisor.compiler import Fn, compile_ast, truthy
from supervisor.engine import Evaluation, Recommendation
from supervisor.functions import RuleFunctions
from supervisor.merge import State
from supervisor.remediation.executor import render
from supervisor.remediation.guardrails import cooldown_left, open_window, rate_reason
from supervisor.remediation.history import History
from supervisor.remediation.holds import Hold, holding
from supervisor.remediation.policy import Policy, PolicySet

BLOCKED = "reconcile_blocked"


class Decision(NamedTuple):
    recommendation: Recommendation
    episode: str | None  # the id of the log line that opened the recommendation
    policy: Policy
    args: Any  # rendered; None when held back before rendering
    guardrail: str | None = None  # None: act
    reason: str = ""
    maintenance: str | None = None  # a marking window that covers the recommendation

    @property
    def go(self) -> bool:
        return self.guardrail is None


class Planner:
    def __init__(self, state: State, evaluation: Evaluation, history: History,
                 holds: dict[str, Hold], policies: PolicySet, now: datetime) -> None:
        self.state, self.evaluation, self.history = state, evaluation, history
        self.holds, self.policies, self.now = holds, policies, now
        self.functions = RuleFunctions(now)
        self._compiled: dict[int, Fn] = {}

    def matcher(self, ast: Any) -> Fn:
        compiled = self._compiled.get(id(ast))
        if compiled is None:
            compiled = self._compiled[id(ast)] = compile_ast(ast, functions=self.functions)
        return compiled

    def candidates(self) -> list[tuple[Recommendation, str | None]]:
        """Recommendations that hold now and are open in the log as such: acting on one that
        `run` has not recorded (or recorded differently) would act on what nobody was told.
        Blocked ones are never acted on: reconciling them would not help."""
        found = []
        # Dependencies before their dependents: everything a subject depends on has fewer
        # dependencies of its own, so acting in this order meets root causes first.
        ordered = sorted(self.evaluation.recommendations,
                         key=lambda r: len(self._upstream(r.subject.id, r.subject.kind)))
        for recommendation in ordered:
            episode = self.history.episodes.get(recommendation.fingerprint)
            if (recommendation.event != BLOCKED and episode is not None
                    and episode[1] == recommendation.event):
                found.append((recommendation, episode[0]))
        return found

    def plan(self) -> list[Decision]:
        decisions: list[Decision] = []
        for recommendation, episode in self.candidates():
            document = {**self.state.document(recommendation.subject),
                        "recommendation": recommendation.to_json()}
            policy = self._policy(document)
            if policy is None:
                continue  # no policy, no remediation
            decisions.append(self._decide(recommendation, episode, policy, document, decisions))
        return decisions

    def _policy(self, document: dict[str, Any]) -> Policy | None:
        for policy in self.policies.policies:
            if not policy.enabled:
                continue
            try:
                if truthy(self.matcher(policy.ast)(document)):
                    return policy
            except (JMESPathError, ValueError, TypeError):
                continue  # a matcher that cannot read this document does not match it
        return None

    def _decide(self, recommendation: Recommendation, episode: str | None, policy: Policy,
                document: dict[str, Any], earlier: list[Decision]) -> Decision:
        subject_id = recommendation.subject.id
        held = _held(self, recommendation, policy, episode)
        opened = open_window(self.policies.windows, self.now, document, self.matcher, subject_id)
        marked = opened[0].id if opened is not None and opened[0].mark else None
        hold = holding(self.holds, subject_id, self.now)
        if hold is not None:
            until = f" until {hold.until}" if hold.until else ""
            why = f": {hold.reason}" if hold.reason else ""
            return held("hold", f"held by {hold.by} since {hold.at}{until}{why}", marked)
        if opened is not None:
            return held("maintenance", opened[1], marked)
        cause = self._root_cause(recommendation, earlier)
        if cause is not None:
            return held("root_cause", cause, marked)
        on_subject = self.history.on(subject_id)
        flying = [attempt for attempt in on_subject if attempt.in_flight]
        if flying:
            return held("in_flight", f"attempt {flying[-1].id} (started {flying[-1].started_at}) "
                        f"awaits verification until {flying[-1].verify_by}", marked)
        left = cooldown_left(on_subject, self.policies.cooldown(policy), self.now)
        if left > 0:
            return held("cooldown", f"the last action on {subject_id} was less than "
                        f"{self.policies.cooldown(policy):g} s ago ({left:g} s to go)", marked)
        this_pass = sum(1 for decision in earlier if decision.go)
        rate = rate_reason(self.policies.limits, on_subject,
                           list(self.history.attempts.values()), this_pass, self.now)
        if rate is not None:
            return held(*rate, marked)
        try:
            args = render(policy.args, document, self.functions)
        except (JMESPathError, ValueError, TypeError) as error:
            return held("bad_arguments", f"policy {policy.id!r} ({policy.file}): {error}", marked)
        return Decision(recommendation, episode, policy, args, maintenance=marked)

    def _root_cause(self, recommendation: Recommendation, earlier: list[Decision]) -> str | None:
        subject = recommendation.subject
        for withdrawn, cause in self.evaluation.overruled.items():
            if withdrawn.subject == subject:
                return (f"{withdrawn.action} ({withdrawn.condition}) on {subject.id} is overruled "
                        f"by {cause.action} ({cause.condition}) on {cause.subject.id}: the root "
                        "cause comes first")
        busy = {attempt.subject.get("id") for attempt in self.history.in_flight()}
        busy |= {d.recommendation.subject.id for d in earlier if d.go}
        busy.discard(subject.id)
        for upstream in self._upstream(subject.id, subject.kind):
            if upstream in busy:
                return f"{upstream}, which {subject.id} depends on, is still being remediated"
        return None

    def _upstream(self, subject_id: str, kind: str) -> list[str]:
        """The subject's node (for a service), and everything it depends on, transitively."""
        if kind != "service":
            return []
        services = self.state.inventory.services
        found: list[str] = [subject_id.split("/", 1)[0]]
        pending = list(services[subject_id].depends_on) if subject_id in services else []
        while pending:
            dependency = pending.pop()
            if dependency in found:
                continue
            found.append(dependency)
            if dependency in services:
                pending.extend(services[dependency].depends_on)
        return found


def _held(planner: Planner, recommendation: Recommendation, policy: Policy,
          episode: str | None) -> Callable[..., Decision]:
    def make(guardrail: str, reason: str, marked: str | None) -> Decision:
        return Decision(recommendation, episode, policy, None, guardrail, reason, marked)

    return make

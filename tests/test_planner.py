"""The planner decides from states alone; these tables pin every trigger rule."""

from __future__ import annotations

import pytest

from nbflow import DAG, TriggerRule
from nbflow.operators import EmptyOperator
from nbflow.planner import RUN, SKIP, UPSTREAM_FAILED, WAIT, Decision, judge, plan_after, plan_start, run_outcome
from nbflow.states import TaskState as S

R = TriggerRule

# (rule, upstream states, verdict)
CASES = [
    (R.ALL_SUCCESS, ["success", "success"], RUN),
    (R.ALL_SUCCESS, ["success", "running"], WAIT),
    (R.ALL_SUCCESS, ["failed", "running"], UPSTREAM_FAILED),
    (R.ALL_SUCCESS, ["skipped", "success"], SKIP),
    (R.ALL_SUCCESS, ["upstream_failed", "success"], UPSTREAM_FAILED),
    (R.ALL_FAILED, ["failed", "upstream_failed"], RUN),
    (R.ALL_FAILED, ["failed", "success"], SKIP),
    (R.ALL_FAILED, ["failed", "running"], WAIT),
    (R.ALL_DONE, ["failed", "skipped", "success"], RUN),
    (R.ALL_DONE, ["failed", "running"], WAIT),
    (R.ALL_SKIPPED, ["skipped", "skipped"], RUN),
    (R.ALL_SKIPPED, ["skipped", "success"], SKIP),
    (R.ALL_SKIPPED, ["skipped", "running"], WAIT),
    (R.ONE_SUCCESS, ["success", "running"], RUN),
    (R.ONE_SUCCESS, ["failed", "skipped"], UPSTREAM_FAILED),
    (R.ONE_SUCCESS, ["skipped", "skipped"], SKIP),
    (R.ONE_SUCCESS, ["running", "failed"], WAIT),
    (R.ONE_FAILED, ["failed", "running"], RUN),
    (R.ONE_FAILED, ["upstream_failed", "running"], RUN),
    (R.ONE_FAILED, ["success", "skipped"], SKIP),
    (R.ONE_FAILED, ["success", "running"], WAIT),
    (R.ONE_DONE, ["failed", "running"], RUN),
    (R.ONE_DONE, ["success", "running"], RUN),
    (R.ONE_DONE, ["skipped", "skipped"], SKIP),
    (R.ONE_DONE, ["skipped", "running"], WAIT),
    (R.NONE_FAILED, ["success", "skipped"], RUN),
    (R.NONE_FAILED, ["skipped", "skipped"], RUN),
    (R.NONE_FAILED, ["failed", "running"], UPSTREAM_FAILED),
    (R.NONE_FAILED, ["success", "running"], WAIT),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, ["success", "skipped"], RUN),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, ["skipped", "skipped"], SKIP),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, ["upstream_failed", "success"], UPSTREAM_FAILED),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, ["success", "running"], WAIT),
    (R.NONE_SKIPPED, ["success", "failed"], RUN),
    (R.NONE_SKIPPED, ["skipped", "running"], SKIP),
    (R.NONE_SKIPPED, ["success", "running"], WAIT),
    (R.ALWAYS, ["running", "none"], RUN),
    (R.ALWAYS, ["failed", "failed"], RUN),
    # "setup:<state>" is an upstream setup task; a teardown waits for all, then needs one setup to succeed
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:success", "failed"], RUN),
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:success", "running"], WAIT),
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:failed", "setup:success", "upstream_failed"], RUN),
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:failed", "upstream_failed"], UPSTREAM_FAILED),
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:failed", "setup:skipped", "skipped"], UPSTREAM_FAILED),
    (R.ALL_DONE_SETUP_SUCCESS, ["setup:skipped", "skipped"], SKIP),
    (R.ALL_DONE_SETUP_SUCCESS, ["failed", "skipped"], RUN),
]


@pytest.mark.parametrize(("rule", "upstream", "verdict"), CASES, ids=[f"{c[0].value}-{'-'.join(c[1])}" for c in CASES])
def test_trigger_rule_table(rule: TriggerRule, upstream: list[str], verdict: str) -> None:
    states = [S(s.removeprefix("setup:")) for s in upstream]
    setups = [S(s.removeprefix("setup:")) for s in upstream if s.startswith("setup:")]
    counts = dict(
        total=len(states),
        success=sum(s is S.SUCCESS for s in states),
        skipped=sum(s is S.SKIPPED for s in states),
        failed=sum(s in (S.FAILED, S.UPSTREAM_FAILED) for s in states),
        done=sum(s.finished for s in states),
        setups=len(setups),
        setup_success=sum(s is S.SUCCESS for s in setups),
        setup_skipped=sum(s is S.SKIPPED for s in setups),
    )
    assert judge(rule, **counts) == verdict


def test_every_trigger_rule_is_covered_by_the_table() -> None:
    assert {case[0] for case in CASES} == set(TriggerRule)


def _diamond() -> DAG:
    with DAG("diamond") as dag:
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        c = EmptyOperator(task_id="c")
        d = EmptyOperator(task_id="d")
        e = EmptyOperator(task_id="e")
        a >> [b, c] >> d >> e
    return dag


def test_start_schedules_only_roots() -> None:
    dag = _diamond()
    states = {t: S.NONE for t in dag.task_ids}
    assert plan_start(dag, states).ready == ["a"]


def test_failure_cascades_upstream_failed_through_the_whole_chain() -> None:
    dag = _diamond()
    states = {t: S.NONE for t in dag.task_ids}
    states.update(a=S.SUCCESS, b=S.FAILED, c=S.SUCCESS)
    changes = plan_after(dag, ["b"], states, {}).changes
    assert changes == {"d": S.UPSTREAM_FAILED, "e": S.UPSTREAM_FAILED}
    states.update(changes)
    assert run_outcome(dag, states) is S.FAILED


def test_branch_skips_the_road_not_taken_and_the_join_follows_its_rule() -> None:
    with DAG("branching") as dag:
        pick = EmptyOperator(task_id="pick")
        left = EmptyOperator(task_id="left")
        right = EmptyOperator(task_id="right")
        after_right = EmptyOperator(task_id="after_right")
        join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
        pick >> [left, right]
        right >> after_right
        [left, after_right] >> join
    states = {t: S.NONE for t in dag.task_ids}
    states["pick"] = S.SUCCESS
    decisions = {"pick": Decision(frozenset({"left"}))}
    changes = plan_after(dag, ["pick"], states, decisions).changes
    assert changes == {"left": S.SCHEDULED, "right": S.SKIPPED, "after_right": S.SKIPPED}
    states.update(changes)
    states["left"] = S.SUCCESS
    assert plan_after(dag, ["left"], states, decisions).changes == {"join": S.SCHEDULED}


def test_short_circuit_skips_every_descendant_whatever_their_rules() -> None:
    with DAG("short") as dag:
        gate = EmptyOperator(task_id="gate")
        nxt = EmptyOperator(task_id="next")
        last = EmptyOperator(task_id="last", trigger_rule="all_done")
        gate >> nxt >> last
    states = {"gate": S.SUCCESS, "next": S.NONE, "last": S.NONE}
    changes = plan_after(dag, ["gate"], states, {"gate": Decision(frozenset(), skip_all=True)}).changes
    assert changes == {"next": S.SKIPPED, "last": S.SKIPPED}


def test_short_circuit_that_respects_rules_skips_only_direct_downstream() -> None:
    with DAG("short_rules") as dag:
        gate = EmptyOperator(task_id="gate")
        nxt = EmptyOperator(task_id="next")
        last = EmptyOperator(task_id="last", trigger_rule="all_done")
        gate >> nxt >> last
    states = {"gate": S.SUCCESS, "next": S.NONE, "last": S.NONE}
    changes = plan_after(dag, ["gate"], states, {"gate": Decision(frozenset(), skip_all=False)}).changes
    assert changes == {"next": S.SKIPPED, "last": S.SCHEDULED}


def test_run_outcome_waits_for_unfinished_tasks_and_judges_by_leaves() -> None:
    dag = _diamond()
    states = {t: S.SUCCESS for t in dag.task_ids}
    states["e"] = S.RUNNING
    assert run_outcome(dag, states) is None
    states["e"] = S.SKIPPED
    assert run_outcome(dag, states) is S.SUCCESS


def _setup_work_teardown(fail_dagrun: bool = False) -> DAG:
    with DAG("setup_teardown") as dag:
        s = EmptyOperator(task_id="s")
        w = EmptyOperator(task_id="w")
        t = EmptyOperator(task_id="t")
        s >> w >> t.as_teardown(setups=s, on_failure_fail_dagrun=fail_dagrun)
    return dag


def test_setup_failure_makes_work_and_teardown_upstream_failed() -> None:
    dag = _setup_work_teardown()
    states = {"s": S.FAILED, "w": S.NONE, "t": S.NONE}
    assert plan_after(dag, ["s"], states, {}).changes == {"w": S.UPSTREAM_FAILED, "t": S.UPSTREAM_FAILED}


def test_teardown_waits_for_work_then_runs_whatever_it_did() -> None:
    dag = _setup_work_teardown()
    states = {"s": S.SUCCESS, "w": S.RUNNING, "t": S.NONE}
    assert plan_after(dag, ["s"], states, {}).changes == {}
    states["w"] = S.FAILED
    assert plan_after(dag, ["w"], states, {}).ready == ["t"]


def test_run_outcome_leaves_out_teardowns_unless_they_fail_the_run() -> None:
    dag = _setup_work_teardown()
    assert dag.task_dict["t"].trigger_rule is R.ALL_DONE_SETUP_SUCCESS
    assert run_outcome(dag, {"s": S.SUCCESS, "w": S.SUCCESS, "t": S.FAILED}) is S.SUCCESS
    assert run_outcome(dag, {"s": S.SUCCESS, "w": S.FAILED, "t": S.SUCCESS}) is S.FAILED
    strict = _setup_work_teardown(fail_dagrun=True)
    assert run_outcome(strict, {"s": S.SUCCESS, "w": S.SUCCESS, "t": S.FAILED}) is S.FAILED


def test_short_circuit_skips_the_work_but_not_the_teardown() -> None:
    with DAG("short_teardown") as dag:
        s = EmptyOperator(task_id="s")
        gate = EmptyOperator(task_id="gate")
        w = EmptyOperator(task_id="w")
        t = EmptyOperator(task_id="t")
        s >> gate >> w >> t.as_teardown(setups=s)
    states = {"s": S.SUCCESS, "gate": S.SUCCESS, "w": S.NONE, "t": S.NONE}
    changes = plan_after(dag, ["gate"], states, {"gate": Decision(frozenset(), skip_all=True)}).changes
    assert changes == {"w": S.SKIPPED, "t": S.SCHEDULED}


def test_setups_and_teardowns_cleared_with_a_task_are_those_around_it() -> None:
    from nbflow.planner import setups_and_teardowns

    with DAG("clear_scope") as dag:
        s1 = EmptyOperator(task_id="s1")
        s2 = EmptyOperator(task_id="s2")
        w = EmptyOperator(task_id="w")
        after = EmptyOperator(task_id="after")
        t1 = EmptyOperator(task_id="t1")
        t2 = EmptyOperator(task_id="t2")
        s1 >> w >> t1.as_teardown(setups=s1)
        s2 >> t2.as_teardown(setups=s2)  # its teardown is not downstream of w
        s2 >> w
        t1 >> after
    assert setups_and_teardowns(dag, "w") == {"s1", "t1"}
    assert setups_and_teardowns(dag, "s2") == {"t2"}
    assert setups_and_teardowns(dag, "t1") == set()
    assert setups_and_teardowns(dag, "after") == set()  # past the teardowns: nothing to set up again

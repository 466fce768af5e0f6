#!/usr/bin/env python3
"""Specification of scripts/render-dashboard.py's data side (no Prometheus, no plotting
library): PromQL variable substitution, empty-result detection, failover detection.

  tests/pictures/test_renderer.py      last line: "N passed, M failed"
"""
import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import dashboard_data as dd  # noqa: E402
import failovers as fo  # noqa: E402

VARS = {"namespace": "le-it", "lease": ".*", "job": "lease-elector", "__rate_interval": "4s"}
NAN = float("nan")
tests = []


def test(fn):
    tests.append(fn)
    return fn


class FakePrometheus:
    """A test double: answers every query_range with the series it was given."""

    def __init__(self, series):
        self.series, self.asked = series, []

    def query_range(self, expr, start, end, step):
        self.asked.append(expr)
        return self.series


def panel(expr, title="Leaders"):
    return dd.Panel(2, "stat", title, (0, 0, 6, 5), "none", [dd.Target("A", expr, "")], {})


def raises(exc, fn):
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


@test
def substitution_replaces_dollar_variables_and_braced_variables():
    got = dd.substitute('x{namespace=~"$namespace", job=~"${job}"}[$__rate_interval]', VARS)
    assert got == 'x{namespace=~"le-it", job=~"lease-elector"}[4s]', got


@test
def substitution_of_an_unknown_variable_is_an_error_naming_it():
    e = raises(dd.DashboardError, lambda: dd.substitute('x{pod=~"$pod"}', VARS))
    assert "$pod" in str(e), e


@test
def substitution_does_not_take_a_longer_name_for_a_variable():
    e = raises(dd.DashboardError, lambda: dd.substitute('x{a=~"$jobs"}', VARS))
    assert "$jobs" in str(e), e


@test
def every_query_of_the_dashboard_substitutes_with_the_renderers_variables():
    env = dict(VARS, __interval="1s", __range="5m", datasource="prometheus")
    panels = dd.load_panels(os.path.join(ROOT, "dashboards", "lease-elector.json"))
    exprs = [dd.substitute(t.expr, env) for p in panels for t in p.targets]
    assert len(exprs) >= 10 and not any("$" in e for e in exprs), exprs


@test
def rate_interval_is_grafanas_four_scrapes_or_step_plus_one_scrape():
    assert dd.rate_interval(1, 1) == 4
    assert dd.rate_interval(60, 15) == 75


@test
def a_result_without_series_has_no_data():
    assert not dd.has_data([])


@test
def a_result_of_only_nan_values_has_no_data():
    assert not dd.has_data([dd.Series({}, [1, 2], [NAN, NAN])])


@test
def one_finite_value_is_data():
    assert dd.has_data([dd.Series({}, [1, 2], [NAN, 0.0])])


@test
def an_empty_result_fails_naming_the_panel_and_the_substituted_query():
    p = panel('up{job=~"$job"}')
    e = raises(dd.QueryError, lambda: dd.fetch(FakePrometheus([]), p, p.targets[0], VARS, (0, 60, 1)))
    assert "'Leaders'" in str(e) and 'up{job=~"lease-elector"}' in str(e) and "empty" in str(e), e


@test
def a_result_with_data_is_returned_as_it_came():
    series = [dd.Series({"pod": "a"}, [1], [1.0])]
    p = panel('up{job=~"$job"}')
    assert dd.fetch(FakePrometheus(series), p, p.targets[0], VARS, (0, 60, 1)) == series


@test
def an_error_answer_from_prometheus_is_a_query_error():
    e = raises(dd.QueryError, lambda: dd.parse_matrix({"status": "error", "errorType": "bad_data",
                                                        "error": "parse error"}))
    assert "parse error" in str(e), e


@test
def legend_format_takes_the_series_labels():
    assert dd.legend("{{lease}} {{ pod }}", {"lease": "l", "pod": "p"}) == "l p"


def lanes(**pods):
    return {name: dd.Series({"pod": name}, list(range(len(v))), [float(x) for x in v]) for name, v in pods.items()}


@test
def a_vacancy_in_which_the_lease_was_seen_released_is_a_handover():
    steps = fo.leader_at(lanes(a=[1, 1, 0, NAN, NAN], b=[0, 0, 0, 0, 1]))
    (f,) = fo.failovers(steps, lease_duration=6, released=[3])
    assert (f.kind, f.before, f.after, f.seconds, f.label(1)) == ("handover", "a", "b", 2, "handover 2s"), f


@test
def a_release_seen_outside_the_vacancy_does_not_make_it_a_handover():
    steps = fo.leader_at(lanes(a=[1, 1, 0, NAN, NAN], b=[0, 0, 0, 0, 1]))
    (f,) = fo.failovers(steps, lease_duration=6, released=[0])
    assert f.kind == "expiry gap", f


@test
def a_direct_change_between_two_steps_is_a_handover_shorter_than_a_step():
    (f,) = fo.failovers(fo.leader_at(lanes(a=[1, NAN], b=[0, 1])), lease_duration=6)
    assert f.kind == "handover" and f.label(step=1) == "handover < 1s", f.label(1)


@test
def no_leader_for_about_a_lease_duration_is_an_expiry_gap():
    (f,) = fo.failovers(fo.leader_at(lanes(a=[1] + [NAN] * 7, b=[0] * 7 + [1])), lease_duration=6)
    assert (f.kind, f.seconds, f.label(1)) == ("expiry gap", 6, "expiry gap 6s"), f


@test
def no_leader_for_longer_than_two_leases_is_named_so():
    (f,) = fo.failovers(fo.leader_at(lanes(a=[1] + [0] * 20 + [1])), lease_duration=6)
    assert (f.kind, f.before, f.after, f.seconds) == ("no leader", "a", "a", 20), f


@test
def a_steady_leader_has_no_failover():
    assert fo.failovers(fo.leader_at(lanes(a=[1, 1, 1], b=[0, 0, 0])), lease_duration=6) == []


@test
def a_release_counts_when_seen_by_a_pod_that_was_running_before():
    pods = lanes(a=[0, 0, 0])
    no_holder = {"a": dd.Series({"pod": "a"}, [2], [1.0])}
    assert fo.seen_released(pods, no_holder) == [2]


@test
def no_holder_reported_by_a_pod_that_just_started_is_not_a_release():
    pods = lanes(a=[NAN, NAN, 0])
    no_holder = {"a": dd.Series({"pod": "a"}, [2], [1.0])}
    assert fo.seen_released(pods, no_holder) == []


@test
def lanes_split_where_a_pod_was_not_scraped():
    got = fo.segments(dd.Series({}, [0, 1, 2, 3, 4], [1, 1, NAN, 0, 0]))
    assert got == [(0, 2, 1), (3, 5, 0)], got


def main():
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__}")
        except Exception:  # noqa: BLE001 - report every failing behaviour
            failed += 1
            print(f"FAIL {t.__name__}\n{traceback.format_exc()}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

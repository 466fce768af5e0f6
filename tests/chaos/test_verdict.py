#!/usr/bin/env python3
"""The chaos checks have teeth: each one, on made-up records, finds what it must find.
Run by tests/chaos/run.sh before the chaos run (python3 -m unittest)."""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
import verdict as v  # noqa: E402
from faults import KINDS, schedule  # noqa: E402


class TermOverlaps(unittest.TestCase):
    def test_a_term_that_begins_before_the_previous_one_ended_is_an_overlap(self):
        found = v.overlaps({"a": [(0.0, 10.0)], "b": [(9.999, 20.0)]})
        self.assertEqual([(o[0], o[1]) for o in found], [("a", "b")])
        self.assertAlmostEqual(found[0][2], 0.001)

    def test_a_term_that_begins_when_the_previous_one_ended_is_no_overlap(self):
        self.assertEqual(v.overlaps({"a": [(0.0, 10.0)], "b": [(10.0, 20.0)]}), [])

    def test_an_open_term_overlaps_every_later_one(self):
        self.assertEqual(len(v.overlaps({"a": [(0.0, None)], "b": [(50.0, 60.0)]})), 1)

    def test_time_spent_stopped_does_not_count_as_leading(self):
        act = v.acting({"a": [(0.0, 10.0)], "b": [(5.0, 20.0)]}, {"a": [(4.0, 9.0)]}, resume=0.0)
        found = v.overlaps(act)
        self.assertEqual(len(found), 1)
        self.assertAlmostEqual(found[0][2], 1.0)  # a's 9..10

    def test_the_one_that_led_on_is_the_one_whose_term_began_first(self):
        act = v.acting({"a": [(0.0, 12.0)], "b": [(8.0, 20.0)]}, {"a": [(4.0, 9.0)]}, resume=0.0)
        self.assertEqual([(o[0], o[1]) for o in v.overlaps(act)], [("a", "b")])  # a resumed at 9

    def test_the_resume_allowance_covers_a_prompt_step_down_only(self):
        terms = {"a": [(0.0, 9.003)], "b": [(5.0, 20.0)]}
        self.assertEqual(v.overlaps(v.acting(terms, {"a": [(4.0, 9.0)]}, resume=0.05)), [])
        late = {"a": [(0.0, 9.2)], "b": [(5.0, 20.0)]}
        self.assertEqual(len(v.overlaps(v.acting(late, {"a": [(4.0, 9.0)]}, resume=0.05))), 1)
        self.assertAlmostEqual(v.resume_lags(late, {"a": [(4.0, 9.0)]})["a"][0], 0.2)

    def test_the_allowance_does_not_hide_a_term_won_after_the_stop(self):
        terms = {"a": [(9.01, 12.0)], "b": [(5.0, 9.03)]}
        self.assertEqual(len(v.overlaps(v.acting(terms, {"a": [(4.0, 9.0)]}, resume=0.05))), 1)


class ForeignRelease(unittest.TestCase):
    def test_a_live_record_cleared_by_another_and_taken_is_found(self):
        h = [(9.0, "MODIFIED", "a", 3, "1"), (9.5, "MODIFIED", "", 3, "2"), (9.6, "MODIFIED", "b", 4, "3")]
        self.assertTrue(v.cleared_under(h, "a", "b", at=9.6))

    def test_a_takeover_of_an_expired_record_is_not(self):
        h = [(9.0, "MODIFIED", "a", 3, "1"), (9.6, "MODIFIED", "b", 4, "2")]
        self.assertFalse(v.cleared_under(h, "a", "b", at=9.6))


class BeyondValidity(unittest.TestCase):
    LEASE = 3.0

    @staticmethod
    def record(history):
        return report.Record(terms={}, reported={}, impl={"a": "lease-elector", "b": "lease-elector"},
                             frozen={"a": [(4.0, 9.0)]}, samples={}, history=history, lives={},
                             clock_offset=0.0, faults=[])

    def judged(self, history):
        o = ("a", "b", 0.09, 9.0 + report.RESUME_ALLOWANCE)
        return report.beyond_validity(o, self.record(history), self.LEASE)

    def test_a_resumed_leader_whose_last_write_is_older_than_its_validity_is_not_leading(self):
        self.assertTrue(self.judged([(3.9, "MODIFIED", "a", 1, "5")]))

    def test_a_resumed_leader_that_renewed_is_leading_on(self):
        self.assertFalse(self.judged([(3.9, "MODIFIED", "a", 1, "5"), (9.12, "MODIFIED", "a", 1, "6")]))

    def test_a_leader_still_within_its_validity_is_leading_on(self):
        self.assertFalse(self.judged([(6.5, "MODIFIED", "a", 1, "5")]))


class Children(unittest.TestCase):
    def test_two_children_alive_at_once_are_found(self):
        lives = {1: {"identity": "le-2", "start": 0.0, "exit": 5.0}, 2: {"identity": "le-3", "start": 4.5, "exit": 9.0}}
        self.assertEqual(len(v.child_overlaps(lives)), 1)

    def test_a_child_that_never_exited_overlaps_its_successor(self):
        lives = {1: {"identity": "le-2", "start": 0.0, "exit": None}, 2: {"identity": "le-3", "start": 30.0, "exit": 31.0}}
        self.assertEqual(len(v.child_overlaps(lives)), 1)


class Sampler(unittest.TestCase):
    def test_intersecting_runs_of_is_leader_answers_are_an_overlap(self):
        a = [(t, t + 0.001, True) for t in (0.0, 0.025, 0.05, 0.075)]
        b = [(t, t + 0.001, True) for t in (0.03, 0.055, 0.08)]
        self.assertEqual(len(v.sampler_overlaps({"a": a, "b": b})), 1)

    def test_a_resumed_candidate_answering_on_is_the_one_that_led_on(self):
        a = [(t, t + 0.001, True) for t in (4.0, 4.025, 4.05)]  # resumed at 4, term since 0
        b = [(t, t + 0.001, True) for t in (3.0, 3.025, 4.03, 4.055)]
        found = v.sampler_overlaps({"a": a, "b": b}, {"a": [(0.0, 4.06)], "b": [(3.0, None)]}, gap=2.0)
        self.assertEqual([(o[0], o[1]) for o in found], [("a", "b")])

    def test_a_gap_in_the_answers_splits_a_run(self):
        a = [(0.0, 0.001, True), (0.025, 0.026, True), (4.0, 4.001, True)]  # stopped in between
        b = [(t, t + 0.001, True) for t in (1.0, 1.025, 1.05)]
        self.assertEqual(v.sampler_overlaps({"a": a, "b": b}), [])

    def test_an_answer_outside_every_logged_term_is_reported(self):
        samples = {"a": [(1.0, 1.001, True), (30.0, 30.001, True)]}
        self.assertEqual(len(v.unlogged_leader_samples(samples, {"a": [(0.0, 10.0)]})), 1)


class LeaseHistory(unittest.TestCase):
    def test_transitions_going_down_are_found(self):
        h = [(0, "MODIFIED", "a", 3, "1"), (1, "MODIFIED", "a", 2, "2")]
        self.assertEqual(len(v.transition_faults(h)), 1)

    def test_a_new_holder_must_raise_transitions(self):
        h = [(0, "MODIFIED", "a", 3, "1"), (1, "MODIFIED", "b", 3, "2")]
        self.assertEqual(len(v.transition_faults(h)), 1)

    def test_a_release_and_a_new_holder_are_fine(self):
        h = [(0, "MODIFIED", "a", 3, "1"), (1, "MODIFIED", "", 3, "2"), (2, "MODIFIED", "b", 4, "3")]
        self.assertEqual(v.transition_faults(h), [])


class Schedule(unittest.TestCase):
    def test_a_seed_gives_the_same_schedule(self):
        one = [f.describe() for f in schedule(42, 50, 5, 3.0)]
        self.assertEqual(one, [f.describe() for f in schedule(42, 50, 5, 3.0)])
        self.assertNotEqual(one, [f.describe() for f in schedule(43, 50, 5, 3.0)])

    def test_every_kind_is_drawn_and_stops_outlast_the_lease(self):
        plan = schedule(7, 50, 5, 3.0)
        self.assertEqual({f.kind for f in plan}, set(KINDS))
        self.assertTrue(all(f.duration > 3.0 for f in plan if f.kind == "sigstop"))

    def test_the_api_server_restarts_once_per_fifty_faults(self):
        self.assertEqual(sum(f.kind == "apiserver" for f in schedule(7, 50, 5, 3.0)), 1)
        self.assertEqual(sum(f.kind == "apiserver" for f in schedule(7, 500, 5, 3.0)), 10)
        self.assertEqual(len(schedule(7, 3, 5, 3.0)), 3)


if __name__ == "__main__":
    unittest.main()

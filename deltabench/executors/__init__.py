"""Executors: how a suite's independent jobs (one per trained victim) are run."""

"""Poison detectors."""

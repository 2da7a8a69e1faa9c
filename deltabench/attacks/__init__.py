"""Poisoning attacks."""

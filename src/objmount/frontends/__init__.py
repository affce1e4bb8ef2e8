"""Frontends: thin translators between a kernel or program interface and the engine."""

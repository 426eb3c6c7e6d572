"""Schedules and SLAs (DESIGN.md §9, docs/schedules.md)."""

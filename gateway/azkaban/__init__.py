"""Azkaban's AJAX API (docs/azkaban.md): `/` (login), `/manager`, `/executor` and `/schedule`."""

"""Projects: grouping, roles, artifacts and the project log (DESIGN.md §11)."""

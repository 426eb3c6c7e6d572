"""The Datameer dialect: Datameer X's job commands (handlers and wire models), over the job service."""

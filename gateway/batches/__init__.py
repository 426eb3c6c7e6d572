"""The batch domain: the service, job control, the scheduler and supervisor, takeover, retention, logs and
the state rules."""

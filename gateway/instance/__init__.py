"""The instance's own life: serve and its workers, the embedded Postgres, log set-up, the LISTEN
connection, the heartbeat lease, periodic steps, readiness and metrics. Imports no domain room."""

"""Jobs (saved, versioned definitions) and runs (DAG executions whose nodes are ordinary batches)."""

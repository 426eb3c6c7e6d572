"""The batch state machine's rules, as pure functions."""

from __future__ import annotations

from gateway.contract.batches import AppState, BatchState


def terminal_state(app_state: str, kill_requested: bool) -> tuple[BatchState, str]:
    """(batch state, app state) for an application that ended.

    A finished app is FINISHED even if a kill came too late. Otherwise a requested kill makes it
    CANCELED/KILLED, and anything else is ERROR with the app's own end state.
    """
    if app_state == AppState.FINISHED:
        return BatchState.FINISHED, AppState.FINISHED
    if kill_requested:
        return BatchState.CANCELED, AppState.KILLED
    return BatchState.ERROR, app_state if app_state in (AppState.FAILED, AppState.KILLED) else AppState.FAILED

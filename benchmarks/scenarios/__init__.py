"""One module per scenario; each has `async def run(ctx) -> list[Figure]`."""

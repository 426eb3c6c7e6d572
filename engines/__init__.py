"""Engine adapters: one module per engine, behind the Protocol in engines.base."""

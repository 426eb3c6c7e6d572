"""HTTP layer: parse and validate requests, call the service, shape responses. No business logic."""

"""The wire contract: the pydantic API models that the client and the server share. Imports neither."""

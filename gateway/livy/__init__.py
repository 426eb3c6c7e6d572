"""The Livy dialect: its handlers (under /livy and on the Livy port) and its wire models."""

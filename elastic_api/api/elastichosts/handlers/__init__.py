"""Handlers: thin translations from a Call to a service use case and back to a Result."""

"""The public APIs: one package per dialect, each translating its wire format to the typed services."""

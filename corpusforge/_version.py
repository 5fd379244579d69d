"""The package version, in a module of its own so that every stage can import it without importing the API."""

__version__ = "0.1.0"

"""The tool version recorded in every lock (kept here so that no module imports the package root)."""

__version__ = "0.1.0"

"""The application: pipeline, protocols, store, export, UI and command line."""

__version__ = "0.1.0"

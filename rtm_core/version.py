"""The one version number of RTM Explorer (rtm_core, train, app); pyproject.toml reads it."""

__version__ = "0.3.0"

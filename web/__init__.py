"""The web interface: a JSON API over ``qa.engine.Engine`` and a chat page."""

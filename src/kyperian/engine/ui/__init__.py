"""The trader's cockpit at ``/ui``: server-rendered panels over the engine's ports."""

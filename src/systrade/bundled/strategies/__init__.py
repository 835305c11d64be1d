"""The strategies bundled with systrade, found by name from any folder (``systrade strategies list``).

They are loaded from their files like a project's own (``strategy.discover``); a project's strategy of the same
name wins over them.
"""

"""The LiFT services (critic, generator, trainer), importable as ``lift.services``.

The code lives in the repository's top-level ``services/`` folder; ``lift/services`` is a
symlink to it, so the wheel installs it as ``lift/services`` and no top-level
``services`` package is ever installed.
"""

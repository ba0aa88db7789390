"""Pipeline presets: TOML files, package data read by :func:`vsr.cli.load_preset`."""

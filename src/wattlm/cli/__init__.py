"""The ``wattlm`` command line: one module per subcommand, assembled in :mod:`wattlm.cli.main`."""

"""Support for the compat tests: cached virtualenvs (``venvs``), old Prefect servers
(``servers``), the checks run against each server (``checks``) and the server models'
defaults (``defaults``). ``benchmarks/compat.py`` uses them too."""

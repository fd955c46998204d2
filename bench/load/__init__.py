"""Load harness for the switch: `python -m bench.load` (see __main__ for the modes)."""

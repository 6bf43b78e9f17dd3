"""Coverage-guided fuzzing (atheris) of what a node reads from the outside: ``make fuzz``."""

"""The commands of the package's top-level concerns (evaluating, testing, running); each
subpackage keeps its own beside it, in its `commands` module."""

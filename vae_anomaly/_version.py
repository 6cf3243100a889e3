"""The package version, in a module of its own so code below the package face can import it."""

__version__ = "0.1.0"

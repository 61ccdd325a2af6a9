"""The `tfadvser` command line, installed as the `tfadvser_cli` package."""

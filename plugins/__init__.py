"""Built-in pairers and scorers, written only against the public hhcoffea API."""

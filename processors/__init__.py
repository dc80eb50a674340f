"""coffea processors composing hhcoffea's pieces."""

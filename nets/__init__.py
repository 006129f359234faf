"""See README.md, "Architecture"."""

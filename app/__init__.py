"""app: filled in by later issues."""

"""judges: filled in by later issues."""

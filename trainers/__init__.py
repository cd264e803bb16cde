"""trainers: filled in by later issues."""

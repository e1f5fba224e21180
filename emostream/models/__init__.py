"""Neural networks, one file each (shapes in comments)."""

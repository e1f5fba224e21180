"""Portrait preparation, ARKit rig and renderers (analytic CPU warp, FOMM)."""

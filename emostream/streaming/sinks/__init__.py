"""Outputs of a session: mp4 file, virtual camera, audio playback, ARKit streams."""

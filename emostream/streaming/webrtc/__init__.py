"""WebRTC transport: an aiohttp app that answers browser offers with a live avatar.

``server`` (the app, signalling, capacity, cleanup), ``tracks`` (paced avatar video/audio tracks
and the microphone receiver), ``codecs`` (encoder policy), ``ice`` (ICE servers and loopback),
``control`` (the data-channel protocol), ``portrait`` (upload validation).
"""

"""Named vertex groups of the 468-vertex face-mesh topology (mediapipe's canonical face mesh,
Apache-2.0). "Right"/"left" are the subject's: the subject's right eye is on the image's left.
Contours run from the image-left end to the image-right end."""

from __future__ import annotations

LIP_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIP_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIP_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNER_RIGHT, MOUTH_CORNER_LEFT = 61, 291
INNER_CORNER_RIGHT, INNER_CORNER_LEFT = 78, 308
LIP_UPPER_MID, LIP_LOWER_MID = 13, 14

# Eyes: corners then upper / lower lid contours (outer corner → inner corner for the right eye).
EYE_RIGHT_CORNERS = (33, 133)
EYE_RIGHT_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_RIGHT_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_LEFT_CORNERS = (362, 263)
EYE_LEFT_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_LEFT_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
EYE_RIGHT_TOP, EYE_RIGHT_BOTTOM = 159, 145
EYE_LEFT_TOP, EYE_LEFT_BOTTOM = 386, 374

BROW_RIGHT_UPPER = (70, 63, 105, 66, 107)  # outer → inner
BROW_RIGHT_LOWER = (46, 53, 52, 65, 55)
BROW_LEFT_UPPER = (336, 296, 334, 293, 300)  # inner → outer
BROW_LEFT_LOWER = (285, 295, 282, 283, 276)

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
NOSE_TIP = 1
NOSE_BASE = 2  # below the nose tip (subnasale)
CHIN = 152
FOREHEAD = 10
NOSE_ALAR_RIGHT, NOSE_ALAR_LEFT = 129, 358
CHEEK_RIGHT, CHEEK_LEFT = 50, 280

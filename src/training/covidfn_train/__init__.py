"""CovidFunctions training package: DFSN (lesion segmentation) and DTCN (covid / cap / normal classification).

Run with /usr/bin/python3 (Debian torch). See docs/model-card.md.
"""
PREPROCESSING_ID = "lung2d-v1"
SIDE = 352
CLASSES = ("covid", "cap", "normal")

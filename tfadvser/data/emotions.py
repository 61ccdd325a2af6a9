"""Emotion label names and codes shared by the corpus readers and the synthesiser."""

# The paper's seven classes, in the index order of the authors' config (facts section 2).
DEMOS_LABELS = ("anger", "disgust", "fear", "guilt", "happiness", "sadness", "surprise")
NEUTRAL = "neutral"

# DEMoS file-name emotion codes (e.g. `NP_m_19_ang08b.wav`).
DEMOS_CODES = {
    "ang": "anger",
    "dis": "disgust",
    "fea": "fear",
    "gui": "guilt",
    "hap": "happiness",
    "sad": "sadness",
    "sur": "surprise",
    "neu": NEUTRAL,
}
LABEL_TO_DEMOS_CODE = {label: code for code, label in DEMOS_CODES.items()}

"""Hugging Face Space apps shipped with the package.

`leaderboard_app.py` is the leaderboard Space's `app.py`, copied verbatim into the Space folder by
`hub_cards.space.write_leaderboard_space`. It imports only gradio, pandas and huggingface_hub (the Space's
`requirements.txt`), never `cambench_qr`, so the Space runs without this package installed; what it needs
to know about the leaderboard (schema version, score labels, the dataset's Hub id) it reads from the
`space.json` written next to it.
"""

from pathlib import Path

LEADERBOARD_APP = Path(__file__).with_name("leaderboard_app.py")

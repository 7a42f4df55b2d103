"""CAMBench-QR: is a CAM explanation on the structure a QR reader needs?

Rooms (docs/architecture.md): ``dataset_builder`` (images + exact part-label maps), ``metrics`` (structure
scores), ``cams`` (batched CAM engine), ``harness`` (Accelerate training and evaluation), ``hub_cards``
(cards, leaderboard, Hub publishing). ``parts`` is the data contract they share.
"""

__version__ = "0.1.0"

"""Fine-tuning the vlm critic on human ratings (``lift critic train``)."""

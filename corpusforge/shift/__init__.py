"""The shift report: how the targeted tokens moved after a LoRA, and what else moved with them."""

"""What the host and the board share: the framed serial protocol (:mod:`.frames`) and the weight
image in flash (:mod:`.weight_image`). Both sides take their definitions from here, so the
gateware, the host and the build cannot disagree about a byte."""

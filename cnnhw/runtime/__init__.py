"""Host side: the serial protocol, and talking to a board (or a simulated one) with it."""

"""cnnhw: turn a trained CNN into verified FPGA hardware with open tools only."""

__version__ = "0.1.0"

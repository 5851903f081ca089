"""Safe RLHF (Dai et al., ICLR 2024) as a Hydra-configured PyTorch Lightning framework."""

__version__ = "0.1.0"

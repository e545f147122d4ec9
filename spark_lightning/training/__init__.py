"""The training core: the LightningModule, its losses, optimizers and schedules, the VRAM budget."""
